/**
 * Public API of src/image: open image files (docker save, OCI layouts), the layer store, analysis,
 * diff and commit. The mount command needs only openImage(ref, {store}).lowerDirs().
 */
export { openImage, importLayer, type ImageLayer, type OpenedImage, type OpenOptions } from './open-image.js'
export { LayerStore, defaultStoreDir, type LayerMeta } from './store.js'
export { analyzeImage, replayLayers, type ImageReport, type LayerReport } from './analyze.js'
export { diffUpper, lowerTree, type Change } from './changes.js'
export { commitImage, type CommitOptions, type CommitResult } from './commit.js'
export { ImageError } from './errors.js'
export { parseImageRef, type ImageChoice } from './resolve.js'
