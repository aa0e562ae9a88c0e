/* The functions addon.c registers, one per JS export; each file implements one concern. */
#ifndef LAYERFS_EXPORTS_H
#define LAYERFS_EXPORTS_H

#define NAPI_VERSION 8
#include <node_api.h>

/* xattr.c */
napi_value js_lgetxattr(napi_env env, napi_callback_info info);
napi_value js_stage_copy(napi_env env, napi_callback_info info);
napi_value js_stage_copy_sync(napi_env env, napi_callback_info info);
napi_value js_copy_dir_sync(napi_env env, napi_callback_info info);
napi_value js_commit_copy(napi_env env, napi_callback_info info);
napi_value js_stage_copy_unnamed(napi_env env, napi_callback_info info);
napi_value js_stage_copy_unnamed_sync(napi_env env, napi_callback_info info);
napi_value js_stage_small_unnamed_sync(napi_env env, napi_callback_info info);
napi_value js_link_copy(napi_env env, napi_callback_info info);
napi_value js_fill_copy(napi_env env, napi_callback_info info);
napi_value js_fill_copy_sync(napi_env env, napi_callback_info info);
napi_value js_fill_copy_fd_sync(napi_env env, napi_callback_info info);
napi_value js_link_fd(napi_env env, napi_callback_info info);
napi_value js_fgetxattr(napi_env env, napi_callback_info info);
napi_value js_lsetxattr(napi_env env, napi_callback_info info);
napi_value js_fsetxattr(napi_env env, napi_callback_info info);
napi_value js_llistxattr(napi_env env, napi_callback_info info);
napi_value js_flistxattr(napi_env env, napi_callback_info info);
napi_value js_lremovexattr(napi_env env, napi_callback_info info);
napi_value js_fremovexattr(napi_env env, napi_callback_info info);

/* node.c */
napi_value js_mknod(napi_env env, napi_callback_info info);
napi_value js_renameat2(napi_env env, napi_callback_info info);
napi_value js_utimensat(napi_env env, napi_callback_info info);
napi_value js_futimens(napi_env env, napi_callback_info info);
napi_value js_dup_fd(napi_env env, napi_callback_info info);
napi_value js_flock_nowait(napi_env env, napi_callback_info info);
napi_value js_setsid(napi_env env, napi_callback_info info);
napi_value js_malloc_thresholds(napi_env env, napi_callback_info info);
napi_value js_ioctl_path(napi_env env, napi_callback_info info);

/* data.c */
napi_value js_seek_data(napi_env env, napi_callback_info info);
napi_value js_seek_hole(napi_env env, napi_callback_info info);
napi_value js_copy_file_range(napi_env env, napi_callback_info info);
napi_value js_ficlone(napi_env env, napi_callback_info info);
napi_value js_syncfs(napi_env env, napi_callback_info info);
napi_value js_fallocate(napi_env env, napi_callback_info info);
napi_value js_pread_nowait(napi_env env, napi_callback_info info);
napi_value js_first_page_cached(napi_env env, napi_callback_info info);
napi_value js_pwrite_nowait(napi_env env, napi_callback_info info);
napi_value js_prefetch(napi_env env, napi_callback_info info);
napi_value js_lstat_into(napi_env env, napi_callback_info info);
napi_value js_fstat_into(napi_env env, napi_callback_info info);
napi_value js_list_dir(napi_env env, napi_callback_info info);
napi_value js_list_dir_async(napi_env env, napi_callback_info info);

/* names.c */
napi_value js_name_bytes(napi_env env, napi_callback_info info);
napi_value js_name_from_bytes(napi_env env, napi_callback_info info);

/* node.c */
napi_value js_readlink(napi_env env, napi_callback_info info);

/* The FUSE bridge's exports are declared in fuse-ll.h. */

#endif
