/**
 * Finding one image in a source: lists the candidates of a docker-save `manifest.json` or an OCI
 * `index.json` (following nested indexes), picks one by tag, index or digest, and loads its config.
 *
 * Invariants: every blob read by digest is verified (sha256 and size); the config's digest is checked
 * against the manifest; the layer count must equal the config's diff_ids count.
 */
import { stat } from 'node:fs/promises'
import { digestHex, isDigest, sha256Digest } from './digest.js'
import { ImageError } from './errors.js'
import {
  CONTAINERD_NAME, MT, REF_NAME,
  type Descriptor, type DockerManifestEntry, type ImageConfig, type OciIndex, type OciManifest,
} from './oci-types.js'
import { normalizeLayoutPath, type ImageSource } from './source.js'

export interface ImageChoice {
  tag?: string
  index?: number
  digest?: string
}

export interface LayerBlob {
  /** Layout-relative path of the blob. */
  path: string
  /** Blob digest when the format declares one (legacy docker-save does not). */
  digest?: string
  size?: number
  mediaType?: string
}

export interface Candidate {
  names: string[]
  format: 'oci' | 'docker'
  manifestDigest?: string
  platform?: string
  load(): Promise<ResolvedImage>
}

export interface ResolvedImage {
  format: 'oci' | 'docker'
  names: string[]
  manifestDigest?: string
  configDigest: string
  configBytes: Buffer
  config: ImageConfig
  layers: LayerBlob[]
}

const blobPath = (digest: string) => `blobs/sha256/${digestHex(digest)}`

function parseJson<T>(data: Buffer, what: string): T {
  try {
    return JSON.parse(data.toString('utf8')) as T
  } catch (err) {
    throw new ImageError(`${what} is not valid JSON`, { cause: err })
  }
}

async function readBlob(src: ImageSource, d: Descriptor, what: string): Promise<Buffer> {
  const data = await src.readFile(blobPath(d.digest))
  if (!data) throw new ImageError(`${what} ${d.digest} is missing from ${src.label}`)
  const actual = sha256Digest(data)
  if (actual !== d.digest) throw new ImageError(`${what} digest mismatch in ${src.label}: expected ${d.digest}, got ${actual}`)
  if (typeof d.size === 'number' && d.size !== data.length) {
    throw new ImageError(`${what} ${d.digest} size mismatch: expected ${d.size}, got ${data.length}`)
  }
  return data
}

function checkConfig(config: ImageConfig, layerCount: number, label: string): void {
  if (config === null || typeof config !== 'object') throw new ImageError(`image config in ${label} is not an object`)
  if (!config.rootfs || !Array.isArray(config.rootfs.diff_ids)) throw new ImageError(`image config in ${label} has no rootfs.diff_ids`)
  if (config.history !== undefined && !Array.isArray(config.history)) throw new ImageError(`image config in ${label} has a history that is not a list`)
  for (const id of config.rootfs.diff_ids) {
    if (typeof id !== 'string') throw new ImageError(`image config in ${label} has a diff_id that is not a string`)
    digestHex(id)
  }
  if (config.rootfs.diff_ids.length !== layerCount) {
    throw new ImageError(`image in ${label} has ${layerCount} layers but its config lists ${config.rootfs.diff_ids.length} diff_ids`)
  }
}

export async function listCandidates(src: ImageSource): Promise<Candidate[]> {
  const dockerManifest = await src.readFile('manifest.json')
  if (dockerManifest) return dockerCandidates(src, dockerManifest)
  const layout = await src.readFile('oci-layout')
  const index = await src.readFile('index.json')
  if (!index) {
    throw new ImageError(`${src.label} is neither a docker-save archive (manifest.json) nor an OCI layout (index.json)`)
  }
  if (layout) {
    const v = parseJson<{ imageLayoutVersion?: string }>(layout, 'oci-layout').imageLayoutVersion
    if (typeof v !== 'string' || !v.startsWith('1.')) throw new ImageError(`unsupported OCI layout version '${v}' in ${src.label}`)
  }
  const out: Candidate[] = []
  await ociCandidates(src, parseJson<OciIndex>(index, 'index.json'), [], out, 0)
  return out
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

function dockerCandidates(src: ImageSource, data: Buffer): Candidate[] {
  const entries = parseJson<DockerManifestEntry[]>(data, 'manifest.json')
  if (!Array.isArray(entries)) throw new ImageError(`manifest.json in ${src.label} is not a list`)
  for (const e of entries as unknown[]) {
    const entry = e as Partial<Record<keyof DockerManifestEntry, unknown>> | null
    if (entry === null || typeof entry !== 'object' || typeof entry.Config !== 'string' || !isStringList(entry.Layers) ||
      (entry.RepoTags != null && !isStringList(entry.RepoTags))) {
      throw new ImageError(`malformed manifest.json in ${src.label}: each entry needs Config (a path), Layers (paths) and RepoTags (names, or none)`)
    }
  }
  return entries.map((e) => ({
    names: e.RepoTags ?? [],
    format: 'docker' as const,
    load: async (): Promise<ResolvedImage> => {
      const configBytes = await src.readFile(e.Config)
      if (!configBytes) throw new ImageError(`config ${e.Config} is missing from ${src.label}`)
      const configDigest = sha256Digest(configBytes)
      // Both layouts name the config by its digest: `<hex>.json` (legacy) or `blobs/sha256/<hex>`.
      const named = /([a-f0-9]{64})(\.json)?$/.exec(e.Config)?.[1]
      if (named && `sha256:${named}` !== configDigest) {
        throw new ImageError(`config digest mismatch in ${src.label}: expected sha256:${named}, got ${configDigest}`)
      }
      const config = parseJson<ImageConfig>(configBytes, e.Config)
      checkConfig(config, e.Layers.length, src.label)
      const layers: LayerBlob[] = []
      for (const given of e.Layers) {
        const path = normalizeLayoutPath(given)
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(path)
        const blob: LayerBlob = { path }
        if (m?.[1]) blob.digest = `sha256:${m[1]}`
        const size = await src.sizeOf(path)
        if (size !== undefined) blob.size = size
        layers.push(blob)
      }
      return { format: 'docker', names: e.RepoTags ?? [], configDigest, configBytes, config, layers }
    },
  }))
}

async function ociCandidates(src: ImageSource, index: OciIndex, inherited: string[], out: Candidate[], depth: number): Promise<void> {
  if (depth > 8) throw new ImageError(`indexes nested too deep in ${src.label}`)
  if (!Array.isArray(index.manifests)) throw new ImageError(`index in ${src.label} has no manifests list`)
  for (const d of index.manifests) {
    checkDescriptor(d, `an entry of the index in ${src.label}`)
    const names = [...inherited]
    for (const key of [REF_NAME, CONTAINERD_NAME]) {
      const n = d.annotations?.[key]
      if (n && !names.includes(n)) names.push(n)
    }
    if (d.mediaType === MT.ociIndex || d.mediaType === MT.dockerList) {
      const nested = parseJson<OciIndex>(await readBlob(src, d, 'index'), `index ${d.digest}`)
      await ociCandidates(src, nested, names, out, depth + 1)
    } else if (d.mediaType === MT.ociManifest || d.mediaType === MT.dockerManifest) {
      const p = d.platform
      const cand: Candidate = {
        names,
        format: 'oci',
        manifestDigest: d.digest,
        load: () => loadOciManifest(src, d, names),
      }
      if (p?.os || p?.architecture) cand.platform = [p.os, p.architecture, p.variant].filter(Boolean).join('/')
      out.push(cand)
    }
    // Other artifacts (attestations, signatures) are not images: skipped.
  }
}

async function loadOciManifest(src: ImageSource, d: Descriptor, names: string[]): Promise<ResolvedImage> {
  const manifest = parseJson<OciManifest>(await readBlob(src, d, 'manifest'), `manifest ${d.digest}`)
  if (manifest === null || typeof manifest !== 'object' || !Array.isArray(manifest.layers)) throw new ImageError(`manifest ${d.digest} is malformed`)
  checkDescriptor(manifest.config, `the config of manifest ${d.digest}`)
  for (const l of manifest.layers) checkDescriptor(l, `a layer of manifest ${d.digest}`)
  const configBytes = await readBlob(src, manifest.config, 'config')
  const config = parseJson<ImageConfig>(configBytes, `config ${manifest.config.digest}`)
  checkConfig(config, manifest.layers.length, src.label)
  const layers = manifest.layers.map((l) => ({ path: blobPath(l.digest), digest: l.digest, size: l.size, mediaType: l.mediaType }))
  return { format: 'oci', names, manifestDigest: d.digest, configDigest: manifest.config.digest, configBytes, config, layers }
}

/** A descriptor as the code reads it: an object with a sha256 digest and, if any, a numeric size. */
function checkDescriptor(d: unknown, what: string): asserts d is Descriptor {
  const desc = d as Partial<Record<keyof Descriptor, unknown>> | null
  if (desc === null || typeof desc !== 'object' || typeof desc.digest !== 'string' || (desc.size !== undefined && typeof desc.size !== 'number')) {
    throw new ImageError(`${what} is not a descriptor (an object with a digest and a size)`)
  }
}

function nameMatches(name: string, tag: string): boolean {
  const strip = (s: string) => s.replace(/^docker\.io\/(library\/)?/, '').replace(/^localhost\//, '')
  const n = strip(name)
  const t = strip(tag)
  return n === t || n.endsWith(`:${t}`) || n === `${t}:latest`
}

const hostPlatform = () => `linux/${({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' } as Record<string, string>)[process.arch] ?? process.arch}`

/** Picks the one image the choice designates; every ambiguity is an error naming the way out. */
export async function chooseImage(src: ImageSource, choice: ImageChoice): Promise<ResolvedImage> {
  const all = await listCandidates(src)
  if (all.length === 0) throw new ImageError(`no image in ${src.label}`)
  let picked: Candidate[]
  if (choice.index !== undefined) {
    const c = all[choice.index]
    if (!c) throw new ImageError(`${src.label} holds ${all.length} image(s); index ${choice.index} is out of range`)
    picked = [c]
  } else if (choice.digest !== undefined) {
    picked = all.filter((c) => c.manifestDigest === choice.digest)
    if (picked.length === 0) throw new ImageError(`no manifest ${choice.digest} in ${src.label}`)
  } else if (choice.tag !== undefined) {
    const tag = choice.tag
    picked = all.filter((c) => c.names.some((n) => nameMatches(n, tag)))
    if (picked.length === 0) throw new ImageError(`no image tagged '${tag}' in ${src.label} (tags: ${tagList(all)})`)
  } else {
    picked = all
  }
  if (picked.length > 1) {
    const host = picked.filter((c) => c.platform === hostPlatform() || c.platform?.startsWith(`${hostPlatform()}/`))
    if (host.length === 1) picked = host
  }
  const only = picked[0]
  if (picked.length !== 1 || !only) {
    throw new ImageError(`${src.label} holds ${picked.length} images; pick one with FILE:TAG or FILE@INDEX (tags: ${tagList(picked)})`)
  }
  return only.load()
}

function tagList(cs: Candidate[]): string {
  const names = cs.flatMap((c) => c.names)
  return names.length > 0 ? names.join(', ') : 'none'
}

export interface ParsedRef {
  path: string
  choice: ImageChoice
}

/**
 * `FILE`, `FILE:TAG`, `FILE@N` (index), `FILE@sha256:…`, with an optional skopeo-style transport
 * prefix (`oci:`, `oci-archive:`, `docker-archive:`). A path that exists as written wins over a split.
 */
export async function parseImageRef(ref: string): Promise<ParsedRef> {
  const s = ref.replace(/^(oci|oci-archive|docker-archive):/, '')
  const exists = async (p: string) => p !== '' && (await stat(p).then(() => true, () => false))
  if (await exists(s)) return { path: s, choice: {} }
  const at = s.lastIndexOf('@')
  if (at > 0 && (await exists(s.slice(0, at)))) {
    const rest = s.slice(at + 1)
    if (/^\d+$/.test(rest)) return { path: s.slice(0, at), choice: { index: Number(rest) } }
    if (isDigest(rest)) return { path: s.slice(0, at), choice: { digest: rest } }
  }
  // The tag is everything after the first ':' that follows an existing path.
  for (let i = s.indexOf(':'); i > 0; i = s.indexOf(':', i + 1)) {
    if (await exists(s.slice(0, i))) {
      const tag = s.slice(i + 1)
      if (tag !== '') return { path: s.slice(0, i), choice: { tag } }
    }
  }
  throw new ImageError(`${s}: no such file or directory`)
}
