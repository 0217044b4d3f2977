// ferry_sys: the few Linux system calls a containerd shim needs and Node has no API for.
// Each function is a thin wrapper: arguments are validated and named by src/sys/native.ts, the
// only module that loads this addon. Failures become Error objects whose .code is the errno name
// ('EPERM'), .errno the number and .syscall the call, like Node's own system errors.
// spawnProcess starts a child with posix_spawnp (clone(CLONE_VM|CLONE_VFORK) in glibc: no copy of
// the daemon's page tables, unlike fork). Nothing here blocks the event loop: receiveFd, createFileFrom and umount2Async run on the libuv threadpool (napi_async_work),
// watchFd on its own thread that reports through a napi_threadsafe_function.
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <node_api.h>
#include <uv.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

// ---- errors and arguments ----

// Builds an Error like Node's system errors: "<what>: <strerror>", code = errno name.
static napi_value errno_error(napi_env env, int err, const char *syscall, const char *fmt, ...) {
  char what[1024], msg[1200], fallback[16];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *name = strerrorname_np(err);
  if (name == NULL) { snprintf(fallback, sizeof fallback, "E%d", err); name = fallback; }
  napi_value code, message, error, num, sc;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  return error;
}
#define THROW_ERRNO(syscall, ...) \
  do { napi_throw(env, errno_error(env, errno, syscall, __VA_ARGS__)); return NULL; } while (0)

// Fetches exactly n arguments (missing ones read as undefined and fail their type check).
static void args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
}
static bool arg_int(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) == napi_ok) return true;
  napi_throw_type_error(env, NULL, "ferry_sys: expected a number");
  return false;
}
// Returns a malloc'd copy of a JS string (free it), or NULL with a TypeError pending.
static char *arg_string(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "ferry_sys: expected a string");
    return NULL;
  }
  char *s = malloc(len + 1);
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}
static napi_value num(napi_env env, double d) { napi_value v; napi_create_double(env, d, &v); return v; }
static napi_value undefined(napi_env env) { napi_value v; napi_get_undefined(env, &v); return v; }

// ---- thread-pool jobs ----

// A calloc'd job, or NULL with an Error pending.
static void *job_alloc(napi_env env, size_t size) {
  void *j = calloc(1, size);
  if (j == NULL) napi_throw_error(env, "ENOMEM", "ferry_sys: out of memory");
  return j;
}
// Queues `job` on libuv's threadpool (execute there, complete on the JS thread, which settles
// *deferred and deletes *work) and returns its promise.
static napi_value queue_job(napi_env env, const char *what, napi_async_execute_callback execute,
                            napi_async_complete_callback complete, void *job, napi_deferred *deferred,
                            napi_async_work *work) {
  napi_value promise, name;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, job, work);
  napi_queue_async_work(env, *work);
  return promise;
}

// ---- processes ----

static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) THROW_ERRNO("prctl", "prctl PR_SET_CHILD_SUBREAPER");
  return undefined(env);
}

// waitpid(pid, WNOHANG) -> null while running, else { pid, exitStatus, signaled }.
static napi_value waitpid_nohang(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t pid;
  int status;
  args(env, info, 1, argv);
  if (!arg_int(env, argv[0], &pid)) return NULL;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG); while (r < 0 && errno == EINTR);
  if (r < 0) THROW_ERRNO("waitpid", "waitpid %d", pid);
  napi_value result;
  if (r == 0) { napi_get_null(env, &result); return result; }
  bool signaled = WIFSIGNALED(status);
  napi_value sig;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "pid", num(env, r));
  napi_set_named_property(env, result, "exitStatus", num(env, signaled ? 128 + WTERMSIG(status) : WEXITSTATUS(status)));
  napi_get_boolean(env, signaled, &sig);
  napi_set_named_property(env, result, "signaled", sig);
  return result;
}

// Returns a malloc'd NULL-terminated copy of a JS array of strings (free_strings it), or NULL
// with a TypeError pending.
static void free_strings(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p != NULL; p++) free(*p);
  free(v);
}
static char **arg_strings(napi_env env, napi_value v) {
  uint32_t n;
  if (napi_get_array_length(env, v, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "ferry_sys: expected an array of strings");
    return NULL;
  }
  char **out = calloc((size_t)n + 1, sizeof *out);
  if (out == NULL) { napi_throw_error(env, "ENOMEM", "ferry_sys: out of memory"); return NULL; }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, v, i, &e);
    if ((out[i] = arg_string(env, e)) == NULL) { free_strings(out); return NULL; }
  }
  return out;
}


// The exit of a child spawnProcess started: its pidfd (readable once the child has exited) in
// libuv's own epoll through a uv_poll handle, so no thread waits and no SIGCHLD listener is
// needed (a jest test's `process` cannot listen for signals); the handle keeps the event loop
// alive until the exit, as child_process's does. On readable: waitpid(pid, WNOHANG), then
// onExit(exitStatus, signaled) with containerd's 128+signal convention.
typedef struct {
  uv_poll_t poll;
  int pidfd;
  pid_t pid;
  int exit_status;
  bool signaled;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
} exit_watch;

// The handle is closed: only now may the pidfd go. libuv's close invalidates the fd number in
// its epoll once more; had the number been reused meanwhile (a container's output pipe opened
// in between), that would unregister the new fd and its output would never be read.
static void exit_watch_closed(uv_handle_t *h) {
  exit_watch *w = h->data;
  close(w->pidfd);
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, argv[2], result;
  argv[0] = num(env, w->exit_status);
  napi_get_boolean(env, w->signaled, &argv[1]);
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &recv);  // napi_make_callback wants an object as `this`
  if (napi_make_callback(env, w->context, recv, cb, 2, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  free(w);
}

static void exit_watch_ready(uv_poll_t *p, int status, int events) {
  exit_watch *w = p->data;
  int st = 0;
  pid_t r;
  do r = waitpid(w->pid, &st, WNOHANG); while (r < 0 && errno == EINTR);
  if (r == 0) return;  // woken before the exit is reapable: wait on
  // r < 0 (ECHILD) would mean someone else reaped it; 255 ends the wait instead of hanging it.
  w->signaled = r > 0 && WIFSIGNALED(st);
  w->exit_status = r < 0 ? 255 : w->signaled ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
  uv_close((uv_handle_t *)p, exit_watch_closed);  // onExit is called from the close callback
}

// Starts watching `pid` (our unreaped child: its pid cannot be reused meanwhile); 0 or an errno.
static int watch_exit(napi_env env, pid_t pid, napi_value callback, const char **failed) {
  exit_watch *w = calloc(1, sizeof *w);
  if (w == NULL) { *failed = "calloc"; return ENOMEM; }
  w->pid = pid;
  w->env = env;
  *failed = "pidfd_open";
  if ((w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) { int err = errno; free(w); return err; }
  uv_loop_t *loop;
  napi_value name;
  napi_get_uv_event_loop(env, &loop);
  *failed = "uv_poll_init";
  int rc = uv_poll_init(loop, &w->poll, w->pidfd);
  if (rc != 0) { close(w->pidfd); free(w); return -rc; }
  w->poll.data = w;
  napi_create_reference(env, callback, 1, &w->callback);
  napi_create_string_utf8(env, "ferry:childExit", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->context);
  uv_poll_start(&w->poll, UV_READABLE, exit_watch_ready);
  return 0;
}

// pidfdSupported() -> whether this kernel has pidfd_open (Linux 5.3+), which spawnProcess needs.
static napi_value pidfd_supported(napi_env env, napi_callback_info info) {
  int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (fd >= 0) close(fd);
  napi_value result;
  napi_get_boolean(env, fd >= 0, &result);
  return result;
}

// spawnProcess(file, argv, envp, cwd, [fd0, fd1, fd2], onExit) -> pid. A negative fd means /dev/null.
// posix_spawnp: glibc clones with CLONE_VM|CLONE_VFORK, so the parent's page tables are not
// copied (a fork of the ~50 MB daemon costs 2-7 ms per runc call); the parent waits only until
// the child has exec'd, and an exec failure comes back as the return value (ENOENT, EACCES).
// The child gets, as libuv's children do: default dispositions for every signal (Node ignores
// SIGPIPE), an empty signal mask, the given fds as 0/1/2, and no other fd (closefrom 3, on top
// of every fd of Node and of this addon being close-on-exec). The umask is the caller's: the
// clone copies it at the call. onExit(exitStatus, signaled) is called once it has exited and
// been reaped (watch_exit).
static napi_value spawn_process(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  args(env, info, 6, argv);
  napi_valuetype cb_type;
  napi_typeof(env, argv[5], &cb_type);
  if (cb_type != napi_function) { napi_throw_type_error(env, NULL, "ferry_sys: spawnProcess needs an exit callback"); return NULL; }
  int32_t fds[3];
  for (uint32_t i = 0; i < 3; i++) {
    napi_value e;
    if (napi_get_element(env, argv[4], i, &e) != napi_ok || !arg_int(env, e, &fds[i])) return NULL;
  }
  char *file = arg_string(env, argv[0]);
  char **child_argv = file ? arg_strings(env, argv[1]) : NULL;
  char **child_envp = child_argv ? arg_strings(env, argv[2]) : NULL;
  char *cwd = child_envp ? arg_string(env, argv[3]) : NULL;
  napi_value result = NULL;
  if (cwd == NULL) goto out_strings;

  // A source fd below 3 could be overwritten by an earlier dup2 of the file actions: use a copy
  // above 2 (closed again after the spawn).
  int copies[3] = { -1, -1, -1 };
  int err = 0;
  const char *syscall = "posix_spawnp";
  for (int i = 0; i < 3 && err == 0; i++) {
    if (fds[i] >= 0 && fds[i] < 3) {
      if ((copies[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0) { err = errno; syscall = "fcntl"; }
      else fds[i] = copies[i];
    }
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  if (err == 0) {
    for (int i = 0; i < 3 && err == 0; i++) {
      err = fds[i] >= 0 ? posix_spawn_file_actions_adddup2(&actions, fds[i], i)
                        : posix_spawn_file_actions_addopen(&actions, i, "/dev/null", O_RDWR, 0);
    }
    if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (err == 0 && *cwd) err = posix_spawn_file_actions_addchdir_np(&actions, cwd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    // glibc's sigfillset leaves out its two internal signals (32 SIGCANCEL, 33 SIGSETXID), and
    // posix_spawn then sets them to SIG_IGN in the child, which an exec keeps: runc (Go does
    // not install handlers for them) and the container's processes would start with both
    // ignored. A child of libuv's or of the Go shim's has them at the default: ask for that
    // (the bits of sigset_t's first word; sigaddset refuses these two).
    all.__val[0] |= (1UL << (32 - 1)) | (1UL << (33 - 1));
    if (err == 0) err = posix_spawnattr_setsigmask(&attr, &none);
    if (err == 0) err = posix_spawnattr_setsigdefault(&attr, &all);
    if (err == 0) err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (err != 0) syscall = "posix_spawn_file_actions";
  }
  pid_t pid = -1;
  if (err == 0) err = posix_spawnp(&pid, file, &actions, &attr, child_argv, child_envp);
  if (err == 0 && (err = watch_exit(env, pid, argv[5], &syscall)) != 0) {
    // No way to learn of its exit: end it now rather than leave it unreaped.
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
  }
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  for (int i = 0; i < 3; i++) if (copies[i] >= 0) close(copies[i]);
  if (err != 0) {
    napi_value e = errno_error(env, err, syscall, "spawn %s", file);
    napi_value path;
    napi_create_string_utf8(env, file, NAPI_AUTO_LENGTH, &path);
    napi_set_named_property(env, e, "path", path);
    napi_throw(env, e);
  } else {
    result = num(env, pid);
  }
out_strings:
  free(cwd);
  free_strings(child_envp);
  free_strings(child_argv);
  free(file);
  return result;
}

// ---- file descriptors ----

static napi_value pipe2_(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int32_t flags, fds[2];
  args(env, info, 1, argv);
  if (!arg_int(env, argv[0], &flags)) return NULL;
  if (pipe2(fds, flags) != 0) THROW_ERRNO("pipe2", "pipe2");
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, num(env, fds[0]));
  napi_set_element(env, result, 1, num(env, fds[1]));
  return result;
}

static napi_value dup_(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  args(env, info, 1, argv);
  if (!arg_int(env, argv[0], &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) THROW_ERRNO("fcntl", "dup %d", fd);
  return num(env, copy);
}

static napi_value set_cloexec(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool on;
  args(env, info, 2, argv);
  if (!arg_int(env, argv[0], &fd)) return NULL;
  napi_get_value_bool(env, argv[1], &on);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC) < 0)
    THROW_ERRNO("fcntl", "set close-on-exec on fd %d", fd);
  return undefined(env);
}

// mkfifo(2): `ferry run` attaches to a restored task's stdio through FIFOs it hands containerd,
// as ctr does (cio); Node has no mkfifo.
static napi_value mkfifo_(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t mode;
  args(env, info, 2, argv);
  char *path = arg_string(env, argv[0]);
  if (!path) return NULL;
  if (!arg_int(env, argv[1], &mode)) { free(path); return NULL; }
  int rc = mkfifo(path, (mode_t)mode);
  napi_value e = rc != 0 ? errno_error(env, errno, "mkfifo", "mkfifo %s", path) : NULL;
  free(path);
  if (e) { napi_throw(env, e); return NULL; }
  return undefined(env);
}

static napi_value eventfd_(napi_env env, napi_callback_info info) {
  int fd = eventfd(0, EFD_CLOEXEC);
  if (fd < 0) THROW_ERRNO("eventfd", "eventfd");
  return num(env, fd);
}

// ---- terminals ----

static napi_value set_winsize(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, rows, cols;
  args(env, info, 3, argv);
  if (!arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &rows) || !arg_int(env, argv[2], &cols)) return NULL;
  struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0) THROW_ERRNO("ioctl", "ioctl TIOCSWINSZ fd %d", fd);
  return undefined(env);
}

static napi_value get_winsize(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int32_t fd;
  args(env, info, 1, argv);
  if (!arg_int(env, argv[0], &fd)) return NULL;
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0) THROW_ERRNO("ioctl", "ioctl TIOCGWINSZ fd %d", fd);
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "rows", num(env, ws.ws_row));
  napi_set_named_property(env, result, "cols", num(env, ws.ws_col));
  return result;
}

// ---- pipes ----

// ioctl FIONREAD on any end of a pipe or FIFO: how many bytes wait in its buffer. The shim asks
// it of an output FIFO it is about to close, to know whether containerd's client has read
// everything yet (its reader is closed as soon as the task's exit reaches it).
static napi_value queued_bytes(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  args(env, info, 1, argv);
  if (!arg_int(env, argv[0], &fd)) return NULL;
  int n = 0;
  if (ioctl(fd, FIONREAD, &n) != 0) THROW_ERRNO("ioctl", "ioctl FIONREAD fd %d", fd);
  return num(env, n);
}

// The shim's `start` process goes on as the daemon (shim/containerd-shim-ferry-v2): once it
// has printed the address it leaves containerd's session and the pipe containerd reads, like a
// daemon spawned detached would: setsid(), then /dev/null as stdin, stdout and stderr.
static napi_value detach_session(napi_env env, napi_callback_info info) {
  (void)info;
  if (setsid() < 0) THROW_ERRNO("setsid", "setsid");
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0) THROW_ERRNO("open", "open /dev/null");
  for (int target = 0; target <= 2; target++) {
    if (dup2(fd, target) < 0) { int err = errno; close(fd); errno = err; THROW_ERRNO("dup2", "dup2 /dev/null to fd %d", target); }
  }
  close(fd);
  return undefined(env);
}

// ---- unix sockets: runc's --console-socket hands the pty master over with SCM_RIGHTS ----

static napi_value listen_unix(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  args(env, info, 2, argv);
  int32_t backlog;
  if (!arg_int(env, argv[1], &backlog)) return NULL;
  char *path = arg_string(env, argv[0]);
  if (path == NULL) return NULL;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = -1, err = ENAMETOOLONG;
  const char *syscall = "bind";
  if (strlen(path) < sizeof addr.sun_path) {
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) syscall = "socket";
    else if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) syscall = "bind";
    else if (listen(fd, backlog) != 0) syscall = "listen";
    else { free(path); return num(env, fd); }
    err = errno;
    if (fd >= 0) close(fd);
  }
  napi_value e = errno_error(env, err, syscall, "listen on unix socket %s (%s)", path, syscall);
  free(path);
  napi_throw(env, e);
  return NULL;
}

typedef struct {
  int listen_fd, timeout_ms, fd, err;
  const char *syscall;
  char data[4096];
  napi_deferred deferred;
  napi_async_work work;
} recv_job;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
// Waits until fd is readable or the deadline passes; returns 0 or an errno (ETIMEDOUT).
static int wait_readable(int fd, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left < 0) left = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 0;
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

// Threadpool side: accept one connection, take one fd (and the message text) from it.
static void recv_execute(napi_env env, void *p) {
  recv_job *j = p;
  int64_t deadline = now_ms() + j->timeout_ms;
  j->syscall = "accept";
  if ((j->err = wait_readable(j->listen_fd, deadline)) != 0) return;
  int conn = accept4(j->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) { j->err = errno; return; }
  j->syscall = "recvmsg";
  if ((j->err = wait_readable(conn, deadline)) == 0) {
    union { char buf[CMSG_SPACE(sizeof(int) * 8)]; struct cmsghdr align; } control;
    struct iovec iov = { .iov_base = j->data, .iov_len = sizeof j->data - 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    ssize_t n;
    do n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    if (n < 0) j->err = errno;
    else {
      j->data[n] = '\0';
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int *fds = (int *)CMSG_DATA(c);
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {   // keep the first fd, close any extra ones
          if (j->fd < 0) j->fd = fds[i]; else close(fds[i]);
        }
      }
      if (j->fd < 0) j->err = EBADMSG;  // a message without a file descriptor
    }
  }
  close(conn);
}

static void recv_complete(napi_env env, napi_status status, void *p) {
  recv_job *j = p;
  if (j->err != 0) {
    napi_value e = errno_error(env, j->err, j->syscall, "receive fd on socket %d (%s, timeout %d ms)", j->listen_fd, j->syscall, j->timeout_ms);
    napi_reject_deferred(env, j->deferred, e);
  } else {
    napi_value result, data;
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "fd", num(env, j->fd));
    napi_create_string_utf8(env, j->data, NAPI_AUTO_LENGTH, &data);
    napi_set_named_property(env, result, "data", data);
    napi_resolve_deferred(env, j->deferred, result);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value receive_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t listen_fd, timeout_ms;
  args(env, info, 2, argv);
  if (!arg_int(env, argv[0], &listen_fd) || !arg_int(env, argv[1], &timeout_ms)) return NULL;
  recv_job *j = job_alloc(env, sizeof *j);
  if (j == NULL) return NULL;
  j->listen_fd = listen_fd;
  j->timeout_ms = timeout_ms;
  j->fd = -1;
  return queue_job(env, "ferry:receiveFd", recv_execute, recv_complete, j, &j->deferred, &j->work);
}

// ---- staging: one new file filled from another file, in the thread pool ----
// createFileFrom(path, mode, srcFd, offset, length, methods, failFirstCopyWith): one thread-pool
// job does open(O_CREAT|O_EXCL|O_NOFOLLOW) + copy + fchmod + close, so a file costs one round
// trip instead of four, and its bytes go from the archive's page cache to the new file inside
// the kernel: copy_file_range, else (EXDEV across filesystems, EINVAL/ENOSYS/EOPNOTSUPP)
// sendfile, else (EINVAL/ENOSYS) pread + write. The source is read at explicit offsets
// (never its file position), so several jobs can copy from one archive fd at once.
// `methods` is a bitmask of the methods allowed (tests force each one); failFirstCopyWith, when
// non-zero, makes the first copy_file_range call fail with that errno (tests of the fallback;
// ENOSYS cannot be produced otherwise without a seccomp filter). A short source (EOF before
// `length` bytes) is not an error here: the result's `copied` says how far it got.
enum { COPY_RANGE = 1, COPY_SENDFILE = 2, COPY_READ_WRITE = 4 };

typedef struct {
  char *path;
  int32_t mode, src_fd, methods, fail_first;
  int64_t offset, length, copied;
  int method, err;
  const char *syscall;
  napi_deferred deferred;
  napi_async_work work;
} copy_job;

static int lowest_method(int methods) {
  if (methods & COPY_RANGE) return COPY_RANGE;
  if (methods & COPY_SENDFILE) return COPY_SENDFILE;
  if (methods & COPY_READ_WRITE) return COPY_READ_WRITE;
  return 0;
}

// Copies up to j->length bytes from j->src_fd at j->offset to the end of out; 0 or an errno.
static int copy_into(copy_job *j, int out) {
  int allowed = j->methods;
  int method = lowest_method(allowed);
  bool first_range = true;
  char *buf = NULL;
  int err = 0;
  while (j->copied < j->length && method != 0) {
    int64_t left = j->length - j->copied;
    off_t in = (off_t)(j->offset + j->copied);
    ssize_t n;
    if (method == COPY_RANGE) {
      j->syscall = "copy_file_range";
      if (first_range && j->fail_first != 0) { n = -1; errno = j->fail_first; }
      else n = copy_file_range(j->src_fd, &in, out, NULL, left > (1 << 30) ? (1 << 30) : (size_t)left, 0);
      first_range = false;
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        allowed &= ~COPY_RANGE; method = lowest_method(allowed); continue;
      }
    } else if (method == COPY_SENDFILE) {
      j->syscall = "sendfile";
      n = sendfile(out, j->src_fd, &in, left > 0x7ffff000 ? 0x7ffff000 : (size_t)left);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        allowed &= ~COPY_SENDFILE; method = lowest_method(allowed); continue;
      }
    } else {
      const size_t size = 1 << 20;
      if (buf == NULL && (buf = malloc(size)) == NULL) { err = ENOMEM; break; }
      j->syscall = "pread";
      n = pread(j->src_fd, buf, left > (int64_t)size ? size : (size_t)left, in);
      if (n > 0) {
        j->syscall = "write";
        for (ssize_t done = 0; done < n;) {
          ssize_t w = write(out, buf + done, n - done);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) { err = errno; break; }
          done += w;
        }
        if (err != 0) break;
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { err = errno; break; }
    j->method = method;
    if (n == 0) break;  // end of the source: a short copy, reported through `copied`
    j->copied += n;
  }
  if (err == 0 && method == 0 && j->copied < j->length) { j->syscall = "copy"; err = ENOSYS; }
  free(buf);
  return err;
}

static void copy_execute(napi_env env, void *p) {
  copy_job *j = p;
  j->syscall = "open";
  int out;
  do out = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600); while (out < 0 && errno == EINTR);
  if (out < 0) { j->err = errno; return; }
  j->err = copy_into(j, out);
  // The mode is set explicitly (umask must not decide it) and only once the content is in.
  if (j->err == 0 && fchmod(out, (mode_t)j->mode) != 0) { j->err = errno; j->syscall = "fchmod"; }
  if (close(out) != 0 && j->err == 0) { j->err = errno; j->syscall = "close"; }
}

static const char *method_name(int m) {
  return m == COPY_RANGE ? "copy_file_range" : m == COPY_SENDFILE ? "sendfile" : m == COPY_READ_WRITE ? "read-write" : "none";
}

static void copy_complete(napi_env env, napi_status status, void *p) {
  copy_job *j = p;
  if (j->err != 0) {
    napi_value e = errno_error(env, j->err, j->syscall, "%s %s", j->syscall, j->path);
    napi_value path;
    napi_create_string_utf8(env, j->path, NAPI_AUTO_LENGTH, &path);
    napi_set_named_property(env, e, "path", path);
    napi_reject_deferred(env, j->deferred, e);
  } else {
    napi_value result, method;
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "copied", num(env, (double)j->copied));
    napi_create_string_utf8(env, method_name(j->method), NAPI_AUTO_LENGTH, &method);
    napi_set_named_property(env, result, "method", method);
    napi_resolve_deferred(env, j->deferred, result);
  }
  napi_delete_async_work(env, j->work);
  free(j->path);
  free(j);
}

static napi_value create_file_from(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  int32_t mode, src_fd, methods, fail_first;
  int64_t offset, length;
  args(env, info, 7, argv);
  if (!arg_int(env, argv[1], &mode) || !arg_int(env, argv[2], &src_fd) || !arg_int(env, argv[5], &methods) ||
      !arg_int(env, argv[6], &fail_first)) return NULL;
  if (napi_get_value_int64(env, argv[3], &offset) != napi_ok || napi_get_value_int64(env, argv[4], &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "ferry_sys: expected a number");
    return NULL;
  }
  char *path = arg_string(env, argv[0]);
  if (path == NULL) return NULL;
  copy_job *j = job_alloc(env, sizeof *j);
  if (j == NULL) { free(path); return NULL; }
  j->path = path;
  j->mode = mode;
  j->src_fd = src_fd;
  j->offset = offset;
  j->length = length;
  j->methods = methods;
  j->fail_first = fail_first;
  return queue_job(env, "ferry:createFileFrom", copy_execute, copy_complete, j, &j->deferred, &j->work);
}

// ---- mounts ----

static napi_value mount_(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int64_t flags;
  args(env, info, 5, argv);
  char *s[4] = { NULL, NULL, NULL, NULL };   // source, target, fstype, data
  const int idx[4] = { 0, 1, 2, 4 };
  napi_value result = NULL;
  for (int i = 0; i < 4; i++) if ((s[i] = arg_string(env, argv[idx[i]])) == NULL) goto out;
  if (napi_get_value_int64(env, argv[3], &flags) != napi_ok) { napi_throw_type_error(env, NULL, "ferry_sys: expected flags"); goto out; }
  // Empty strings mean "none": remounts and propagation changes take no source, type or data.
  if (mount(*s[0] ? s[0] : NULL, s[1], *s[2] ? s[2] : NULL, (unsigned long)flags, *s[3] ? s[3] : NULL) != 0)
    napi_throw(env, errno_error(env, errno, "mount", "mount %s -> %s", s[0], s[1]));
  else result = undefined(env);
out:
  for (int i = 0; i < 4; i++) free(s[i]);
  return result;
}

// umount2's arguments (target, flags): the target malloc'd (free it), or NULL with an error pending.
static char *umount_args(napi_env env, napi_callback_info info, int32_t *flags) {
  napi_value argv[2];
  args(env, info, 2, argv);
  char *target = arg_string(env, argv[0]);
  if (target == NULL) return NULL;
  if (!arg_int(env, argv[1], flags)) { free(target); return NULL; }
  return target;
}

static napi_value umount2_(napi_env env, napi_callback_info info) {
  int32_t flags;
  char *target = umount_args(env, info, &flags);
  if (target == NULL) return NULL;
  int rc = umount2(target, flags);
  napi_value e = rc != 0 ? errno_error(env, errno, "umount2", "umount2 %s", target) : NULL;
  free(target);
  if (e != NULL) { napi_throw(env, e); return NULL; }
  return undefined(env);
}

// umount2 on the libuv threadpool: the last unmount of an overlay whose upper dir holds dirty
// data syncs it inside the syscall (~200 ms measured after a --rw restore), and the event loop
// must not wait for that.
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *target;
  int flags;
  int err;
} umount_job;

static void umount_execute(napi_env env, void *p) {
  umount_job *j = p;
  j->err = umount2(j->target, j->flags) != 0 ? errno : 0;
}

static void umount_complete(napi_env env, napi_status status, void *p) {
  umount_job *j = p;
  if (j->err != 0) napi_reject_deferred(env, j->deferred, errno_error(env, j->err, "umount2", "umount2 %s", j->target));
  else napi_resolve_deferred(env, j->deferred, undefined(env));
  napi_delete_async_work(env, j->work);
  free(j->target);
  free(j);
}

static napi_value umount2_async(napi_env env, napi_callback_info info) {
  int32_t flags;
  char *target = umount_args(env, info, &flags);
  if (target == NULL) return NULL;
  umount_job *j = job_alloc(env, sizeof *j);
  if (j == NULL) { free(target); return NULL; }
  j->target = target;
  j->flags = flags;
  return queue_job(env, "ferry:umount2", umount_execute, umount_complete, j, &j->deferred, &j->work);
}

// ---- watchFd: a thread reads 8-byte counters (eventfd) and hands them to JS ----

typedef struct {
  int fd, stop_fd;
  bool running, js_gone;   // thread alive / the JS stop() function was garbage-collected
  pthread_t thread;
  napi_threadsafe_function tsfn;
  napi_env env;
} watcher;

static void *watch_thread(void *p) {
  watcher *w = p;
  struct pollfd pfds[2] = { { .fd = w->fd, .events = POLLIN }, { .fd = w->stop_fd, .events = POLLIN } };
  for (;;) {
    if (poll(pfds, 2, -1) < 0) { if (errno == EINTR) continue; break; }
    if (pfds[1].revents != 0) break;                         // stop() was called
    if (!(pfds[0].revents & POLLIN)) break;                  // POLLERR/POLLHUP/POLLNVAL: fd is done
    uint64_t value;
    ssize_t n = read(w->fd, &value, sizeof value);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n != sizeof value) break;
    uint64_t *copy = malloc(sizeof *copy);
    *copy = value;
    if (napi_call_threadsafe_function(w->tsfn, copy, napi_tsfn_nonblocking) != napi_ok) { free(copy); break; }
  }
  return NULL;
}

// Main thread: env == NULL means the tsfn is being torn down and only the data must be freed.
static void watch_call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  if (env != NULL && cb != NULL) {
    napi_value value;
    napi_create_bigint_uint64(env, *(uint64_t *)data, &value);
    napi_call_function(env, undefined(env), cb, 1, &value, NULL);
  }
  free(data);
}

static void env_cleanup(void *p);

// Ends the thread and releases the tsfn. Runs on the main thread, at most once per watcher.
static void watcher_stop(watcher *w, bool from_cleanup_hook) {
  if (!w->running) return;
  w->running = false;
  uint64_t one = 1;
  while (write(w->stop_fd, &one, sizeof one) < 0 && errno == EINTR) {}
  pthread_join(w->thread, NULL);
  close(w->stop_fd);
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);  // drops values not yet delivered
  if (!from_cleanup_hook) napi_remove_env_cleanup_hook(w->env, env_cleanup, w);
}
// Registered after the tsfn, so it runs before Node tears the tsfn down at environment exit.
static void env_cleanup(void *p) {
  watcher *w = p;
  watcher_stop(w, true);
  if (w->js_gone) free(w);
}
static void stop_fn_finalize(napi_env env, void *p, void *hint) {
  watcher *w = p;
  w->js_gone = true;
  if (!w->running) free(w);
}
static napi_value watch_stop(napi_env env, napi_callback_info info) {
  void *w;
  napi_get_cb_info(env, info, NULL, NULL, NULL, &w);
  watcher_stop(w, false);
  return undefined(env);
}

static napi_value watch_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2], name, handle, stop;
  int32_t fd;
  args(env, info, 2, argv);
  if (!arg_int(env, argv[0], &fd)) return NULL;
  watcher *w = job_alloc(env, sizeof *w);
  if (w == NULL) return NULL;
  w->fd = fd;
  w->env = env;
  if ((w->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) { free(w); THROW_ERRNO("eventfd", "watch fd %d: eventfd", fd); }
  napi_create_string_utf8(env, "ferry:watchFd", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, watch_call_js, &w->tsfn) != napi_ok) {
    close(w->stop_fd);
    free(w);
    napi_throw_type_error(env, NULL, "ferry_sys: watchFd needs a callback");
    return NULL;
  }
  napi_unref_threadsafe_function(env, w->tsfn);   // a watcher alone must not keep Node running
  int err = pthread_create(&w->thread, NULL, watch_thread, w);
  if (err != 0) {
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
    close(w->stop_fd);
    free(w);
    errno = err;
    THROW_ERRNO("pthread_create", "watch fd %d: pthread_create", fd);
  }
  w->running = true;
  napi_add_env_cleanup_hook(env, env_cleanup, w);
  napi_create_object(env, &handle);
  napi_create_function(env, "stop", NAPI_AUTO_LENGTH, watch_stop, w, &stop);
  napi_add_finalizer(env, stop, w, stop_fn_finalize, NULL, NULL);
  napi_set_named_property(env, handle, "stop", stop);
  return handle;
}

// ---- memory ----

// malloc_trim(0): glibc returns the free pages inside its heaps (every arena, not only the top of
// the main one as free() does) to the kernel with MADV_DONTNEED. Returns whether any was released.
static napi_value malloc_trim_(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
  return result;
}

// v8::Isolate::GetCurrent() and v8::Isolate::LowMemoryNotification(), V8's public C++ API, by
// their mangled names and weak, as SetFlagsFromString below.
extern void *_ZN2v87Isolate10GetCurrentEv(void) __attribute__((weak));
extern void _ZN2v87Isolate21LowMemoryNotificationEv(void *isolate) __attribute__((weak));

// lowMemoryNotification(): a full collection that also gives V8's free heap memory back (the
// emptied semi-space, free ranges inside old-space pages), which gc() does not: V8 discards it
// only in collections that reduce memory, and its own memory reducer waits ~8 s of low
// allocation for one. Bare node under the launcher's flags: 9.6 -> 6.0 MiB anonymous, 7 ms.
// For src/daemon/memory-settler.ts; false when node does not export V8's functions.
static napi_value low_memory_notification(napi_env env, napi_callback_info info) {
  (void)info;
  void *isolate = _ZN2v87Isolate10GetCurrentEv != NULL && _ZN2v87Isolate21LowMemoryNotificationEv != NULL
                      ? _ZN2v87Isolate10GetCurrentEv() : NULL;
  if (isolate != NULL) _ZN2v87Isolate21LowMemoryNotificationEv(isolate);
  napi_value result;
  napi_get_boolean(env, isolate != NULL, &result);
  return result;
}

// ---- V8's flags ----

// v8::V8::SetFlagsFromString(const char *, size_t), V8's public C++ API, which every Node binary
// exports for addons; declared here by its (Itanium ABI) mangled name because this file is C.
// Weak: a node that lacks it loads the addon all the same, and setV8Flags says it could not.
extern void _ZN2v82V818SetFlagsFromStringEPKcm(const char *flags, size_t length) __attribute__((weak));

// setV8Flags(flags): sets V8 flags at run time, as node's v8.setFlagsFromString does, for
// src/loader/launcher-flags.ts (which says why), without loading node's `v8` module: a program
// started with V8 flags would compile that module from source. Returns false when node lacks
// V8's function.
static napi_value set_v8_flags(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  args(env, info, 1, argv);
  char *flags = arg_string(env, argv[0]);
  if (flags == NULL) return NULL;
  bool present = _ZN2v82V818SetFlagsFromStringEPKcm != NULL;
  if (present) _ZN2v82V818SetFlagsFromStringEPKcm(flags, strlen(flags));
  free(flags);
  napi_value result;
  napi_get_boolean(env, present, &result);
  return result;
}

// ---- program text: a bundle's source as a string that lives in the page cache ----

// Node declares this only under NAPI_EXPERIMENTAL, which would also switch the whole module to
// experimental N-API semantics; it is exported by every Node from 20.4 on (ferry needs 20).
extern napi_status node_api_create_external_string_latin1(napi_env env, char *str, size_t length,
                                                         void (*finalize)(napi_env, void *, void *),
                                                         void *hint, napi_value *result, bool *copied);

// mapAsciiFile(path): the file's contents as a JS string backed by a read-only private mapping
// of the file, or null when the file is empty or holds a byte over 0x7f (latin1 would then not
// read as the file's UTF-8). V8 keeps a script's source for as long as the program runs (it
// compiles functions lazily from it); read into the heap, each shim daemon held its bundles'
// ~0.75 MB of source as anonymous memory of its own, where a mapping is the page cache's, one
// copy for every process (docs/benchmarks.md, Round 5). The mapping is never unmapped: a
// program's source lives as long as the program. The file must be replaced by rename, never
// rewritten in place (contrib/bundle.js and contrib/install.sh do so): a mapped file truncated
// under a running process faults it with SIGBUS, as for the addon itself.
static napi_value map_ascii_file(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  args(env, info, 1, argv);
  char *file = arg_string(env, argv[0]);
  if (file == NULL) return NULL;
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { int e = errno; napi_throw(env, errno_error(env, e, "open", "open %s", file)); free(file); return NULL; }
  struct stat st;
  if (fstat(fd, &st) != 0) { int e = errno; close(fd); napi_throw(env, errno_error(env, e, "fstat", "fstat %s", file)); free(file); return NULL; }
  if (!S_ISREG(st.st_mode) || st.st_size == 0) { close(fd); free(file); napi_value n; napi_get_null(env, &n); return n; }
  size_t len = (size_t)st.st_size;
  void *at = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (at == MAP_FAILED) { napi_throw(env, errno_error(env, e, "mmap", "mmap %s", file)); free(file); return NULL; }
  free(file);
  const unsigned char *bytes = at;
  for (size_t i = 0; i < len; i++) {
    if (bytes[i] > 0x7f) { munmap(at, len); napi_value n; napi_get_null(env, &n); return n; }
  }
  napi_value result;
  bool copied = false;
  if (node_api_create_external_string_latin1(env, at, len, NULL, NULL, &result, &copied) != napi_ok) {
    munmap(at, len);
    napi_throw_error(env, NULL, "ferry_sys: cannot make an external string");
    return NULL;
  }
  if (copied) munmap(at, len); // a Node that copies (V8 sandbox builds): the copy is the string
  return result;
}

// ---- module ----

// The kernel's values, exported so tests can check the TS side's constants against the headers.
static const struct { const char *name; double value; } constants[] = {
#define C(x) { #x, x }
  C(MS_RDONLY), C(MS_NOSUID), C(MS_NODEV), C(MS_NOEXEC), C(MS_SYNCHRONOUS), C(MS_REMOUNT),
  C(MS_MANDLOCK), C(MS_DIRSYNC), C(MS_NOATIME), C(MS_NODIRATIME), C(MS_BIND), C(MS_REC),
  C(MS_PRIVATE), C(MS_SLAVE), C(MS_SHARED), C(MS_RELATIME), C(MS_STRICTATIME),
  C(MNT_DETACH), C(O_NONBLOCK), C(O_CLOEXEC), C(EXDEV), C(EINVAL), C(ENOSYS), C(EOPNOTSUPP),
#undef C
};

NAPI_MODULE_INIT() {
  const napi_property_descriptor fns[] = {
#define FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }
    FN("setChildSubreaper", set_child_subreaper), FN("waitpidNoHang", waitpid_nohang), FN("spawnProcess", spawn_process), FN("pidfdSupported", pidfd_supported),
    FN("detachSession", detach_session),
    FN("pipe2", pipe2_), FN("dup", dup_), FN("setCloexec", set_cloexec), FN("eventfd", eventfd_), FN("mkfifo", mkfifo_), FN("queuedBytes", queued_bytes),
    FN("setWinsize", set_winsize), FN("getWinsize", get_winsize),
    FN("listenUnix", listen_unix), FN("receiveFd", receive_fd), FN("createFileFrom", create_file_from),
    FN("mount", mount_), FN("umount2", umount2_), FN("umount2Async", umount2_async), FN("watchFd", watch_fd),
    FN("mallocTrim", malloc_trim_), FN("mapAsciiFile", map_ascii_file), FN("setV8Flags", set_v8_flags),
    FN("lowMemoryNotification", low_memory_notification),
#undef FN
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
  napi_value c;
  napi_create_object(env, &c);
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
    napi_set_named_property(env, c, constants[i].name, num(env, constants[i].value));
  napi_set_named_property(env, exports, "constants", c);
  return exports;
}
