// The one logging capability the checkpoint safety modules need: they report what they
// skipped or dropped from untrusted checkpoint content. A winston logger fits this shape;
// tests pass a recorder.
export interface WarnLogger {
  warn(msg: string, meta?: object): void;
  debug?(msg: string, meta?: object): void;
}
