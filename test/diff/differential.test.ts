// The differential suite on the driver DIFF_DRIVER selects: layerfs by default (also with passthrough
// off, for the scenarios that read and write files), fuse-overlayfs, layerfs-fuse-native, or kernel (a
// self-check of the harness). See suite.ts.
import { selectedDriver } from './drivers.js'
import { differentialSuite } from './suite.js'

differentialSuite(selectedDriver())
