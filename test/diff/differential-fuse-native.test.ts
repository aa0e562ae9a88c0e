// The differential suite on layerfs's second bridge (bridge=fuse-native: libfuse 2 through the
// fuse-native package), with the default one's scenarios. What that bridge cannot carry is listed in
// known-differences.ts under 'layerfs-fuse-native'. See suite.ts.
import { layerfsFuseNative } from './drivers.js'
import { differentialSuite } from './suite.js'

differentialSuite(layerfsFuseNative)
