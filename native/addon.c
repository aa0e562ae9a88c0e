/* Module registration. The addon keeps no global state (every call owns its op), so it is safe to
 * load in several contexts at once, e.g. vitest workers or worker_threads. */
#include "exports.h"
#include "fuse-ll.h"

#define FN(js, c) { js, NULL, c, NULL, NULL, NULL, napi_enumerable, NULL }

static napi_value init(napi_env env, napi_value exports) {
    static const napi_property_descriptor fns[] = {
        FN("lstatInto", js_lstat_into),
        FN("fstatInto", js_fstat_into),
        FN("listDir", js_list_dir),
        FN("nameBytes", js_name_bytes),
        FN("nameFromBytes", js_name_from_bytes),
        FN("readlink", js_readlink),
        FN("lgetxattr", js_lgetxattr),
        FN("stageCopy", js_stage_copy),
        FN("stageCopySync", js_stage_copy_sync),
        FN("commitCopy", js_commit_copy),
        FN("stageCopyUnnamed", js_stage_copy_unnamed),
        FN("stageCopyUnnamedSync", js_stage_copy_unnamed_sync),
        FN("linkCopy", js_link_copy),
        FN("linkFd", js_link_fd),
        FN("fgetxattr", js_fgetxattr),
        FN("lsetxattr", js_lsetxattr),
        FN("fsetxattr", js_fsetxattr),
        FN("llistxattr", js_llistxattr),
        FN("flistxattr", js_flistxattr),
        FN("lremovexattr", js_lremovexattr),
        FN("fremovexattr", js_fremovexattr),
        FN("mknod", js_mknod),
        FN("renameat2", js_renameat2),
        FN("utimensat", js_utimensat),
        FN("futimens", js_futimens),
        FN("dupFd", js_dup_fd),
        FN("ioctlPath", js_ioctl_path),
        FN("seekData", js_seek_data),
        FN("seekHole", js_seek_hole),
        FN("copyFileRange", js_copy_file_range),
        FN("ficlone", js_ficlone),
        FN("syncfs", js_syncfs),
        FN("fallocate", js_fallocate),
        FN("preadNowait", js_pread_nowait),
        FN("prefetch", js_prefetch),
        FN("pwriteNowait", js_pwrite_nowait),
        FN("fuseLlCreate", fll_js_create),
        FN("fuseLlOpNames", fll_js_op_names),
        FN("fuseLlMount", fll_js_mount),
        FN("fuseLlUnmount", fll_js_unmount),
        FN("fuseLlShutdown", fll_js_shutdown),
        FN("fuseLlLoopStats", fll_js_loop_stats),
        FN("fuseLlReplyErr", fll_js_reply_err),
        FN("fuseLlReplyEntry", fll_js_reply_entry),
        FN("fuseLlReplyCreate", fll_js_reply_create),
        FN("fuseLlReplyAttr", fll_js_reply_attr),
        FN("fuseLlReplyReadlink", fll_js_reply_readlink),
        FN("fuseLlReplyOpen", fll_js_reply_open),
        FN("fuseLlGranted", fll_js_granted),
        FN("fuseLlBackingOpen", fll_js_backing_open),
        FN("fuseLlBackingClose", fll_js_backing_close),
        FN("fuseLlReplyWrite", fll_js_reply_write),
        FN("fuseLlReplyLseek", fll_js_reply_lseek),
        FN("fuseLlReplyIoctl", fll_js_reply_ioctl),
        FN("fuseLlReplyBuf", fll_js_reply_buf),
        FN("fuseLlReplyXattr", fll_js_reply_xattr),
        FN("fuseLlReplyStatfs", fll_js_reply_statfs),
        FN("fuseLlReplyReaddir", fll_js_reply_readdir),
        FN("fuseLlReplyReaddirPlus", fll_js_reply_readdirplus),
        FN("fuseLlNotifyInvalInode", fll_js_notify_inval_inode),
        FN("fuseLlNotifyInvalEntry", fll_js_notify_inval_entry),
        FN("fuseLlNotifyStore", fll_js_notify_store),
    };
    if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok) return NULL;
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
