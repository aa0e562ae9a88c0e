{
  "targets": [
    {
      "target_name": "layerfs_native",
      "sources": [
        "native/addon.c",
        "native/op.c",
        "native/names.c",
        "native/xattr.c",
        "native/node.c",
        "native/stat.c",
        "native/data.c",
        "native/copy-up.c",
        "native/fuse-ll-session.c",
        "native/fuse-ll-ops.c",
        "native/fuse-ll-reply.c",
        "native/fuse-ll-passthrough.c",
        "native/fuse-ll-fast.c",
        "native/fuse-ll-cow.c",
        "native/lower-names.c"
      ],
      # libfuse3 for the low-level FUSE bridge (native/fuse-ll*.c).
      "cflags": ["<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "defines": ["_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
      # Hidden visibility: only the napi entry points are exported, so helper names such as op_run
      # cannot collide with symbols of other addons loaded into the same process (fuse-native).
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"]
    }
  ]
}
