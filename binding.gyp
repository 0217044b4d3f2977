{
  "targets": [
    {
      "target_name": "ferry_sys",
      "sources": ["native/ferry_sys.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "libraries": ["-lpthread"]
    }
  ]
}
