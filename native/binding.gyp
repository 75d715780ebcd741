# The N-API addon over libbpf (libbpf-dev), built by scripts/build-bpf.mjs with node-gyp.
{
  "targets": [
    {
      "target_name": "skein_bpf",
      "sources": [
        "src/addon.cc",
        "src/common.cc",
        "src/handles.cc",
        "src/layout.cc",
        "src/object.cc",
        "src/ringbuf.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../bpf/include"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf"]
    }
  ]
}
