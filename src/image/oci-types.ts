/**
 * The JSON shapes of OCI image layouts and Docker save archives, as far as layerfs reads them, with
 * the media type constants. Parsed JSON is checked field by field where it matters (see resolve.ts).
 */
export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const

export const REF_NAME = 'org.opencontainers.image.ref.name'
export const CONTAINERD_NAME = 'io.containerd.image.name'

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  annotations?: Record<string, string>
  platform?: { os?: string; architecture?: string; variant?: string }
}

export interface OciIndex {
  schemaVersion: number
  mediaType?: string
  manifests: Descriptor[]
  annotations?: Record<string, string>
}

export interface OciManifest {
  schemaVersion: number
  mediaType?: string
  config: Descriptor
  layers: Descriptor[]
  annotations?: Record<string, string>
}

export interface HistoryEntry {
  created?: string
  created_by?: string
  comment?: string
  empty_layer?: boolean
  author?: string
}

export interface ImageConfig {
  architecture?: string
  os?: string
  config?: Record<string, unknown>
  rootfs: { type: string; diff_ids: string[] }
  history?: HistoryEntry[]
  [key: string]: unknown
}

/** One entry of a docker-save manifest.json. */
export interface DockerManifestEntry {
  Config: string
  RepoTags?: string[] | null
  Layers: string[]
}
