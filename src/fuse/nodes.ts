/**
 * The node table of the low-level bridge: FUSE node ids ↔ merged-view paths.
 *
 * The union is addressed by path; the kernel by node id. A node is one (parent, name) pair the kernel
 * has looked up, so hard links get one node per name (as in libfuse's high-level API), and a node's
 * path is computed from its parent chain, so a directory rename moves its whole subtree for free.
 *
 * Invariants:
 * - `lookups` is exactly the kernel's count: +1 for every entry reply (lookup, create, mkdir, mknod,
 *   symlink, link, and each non-dot readdirplus entry), −n on forget; a node is dropped at 0.
 * - a name maps to at most one node; unlink, rmdir and rename update the name index at once, while
 *   the node itself lives on until forgotten (an open file keeps working through its file handle).
 * - node ids are never reused, so the generation number can stay 0.
 */

export interface Node {
  readonly id: number
  parent: Node | undefined
  name: string
  lookups: number
  /** st_ino last reported for this node (for invalidating hard-link siblings). */
  ino: number
  /** Whether the node was ever opened (or created), or its first open was left to C (then the
   *  open that reaches JS says whether it is the first): until then the kernel holds none of its pages. */
  opened: boolean
  /** Whether it was ever marked for opens answered in C (Session.fastAllow, or the first open
   *  Session.cowAllow may give C): it may have files open that way. */
  fast: boolean
  /** Whether it may be marked for a setattr answered in C (Session.cowAllow): true until JS takes
   *  the mark away or adopts the copy (the mark may be gone from C earlier). */
  cow: boolean
  /** A file the daemon made, marked as holding no security.capability (Session.made): until a
   *  request that may give it one. */
  noCaps: boolean
  /** And its setattrs may be answered in C: while the open that made it lives (C ends that at its
   *  release), until JS answers one itself. */
  made: boolean
  /** A directory whose lookups of missing names are answered in C (Session.probeAllow). */
  probe: boolean
  /** And its first lookups of lower files and directories (Session.positiveAllow). */
  positive: boolean
  /** A directory that may hold a name JS shows otherwise than its layers do, or a node for a lower
   *  file or directory C does not know by name: C never looks names up in it (LowLevelBridge.#taint). */
  tainted: boolean
  /** C may know the node by its name (a mark with a name, Session.cowAllow, which outlives the mark
   *  when C copied the file up): it is told when the node goes (cowDeny). */
  named: boolean
  /** The last attributes the kernel was sent for it were given no time to live (a copy not named
   *  yet): it holds none valid, and a change needs no invalidation (see LowLevelBridge.#replyAttr). */
  attrsExpired: boolean
  /** A rename moved it and no attributes were sent since: the kernel dropped its ctime (fuse's
   *  rename updates the moved inode's ctime itself and marks it for the next stat to fetch). */
  ctimeExpired: boolean
  /** Its path, kept once a child's path was built from it: valid while `pathEpoch` is the table's. */
  cachedPath: string | undefined
  pathEpoch: number
  /** The nodes answering for its names (the table's name index, kept on each directory: a lookup is
   *  one small map's, by the name alone), or undefined while it has none. */
  children: Map<string, Node> | undefined
}

export const ROOT_ID = 1

/** How many directories byPath remembers (see NodeTable.#dirs). */
const DIRS_MAX = 4096

export class NodeTable {
  readonly root: Node = { ...newNode(ROOT_ID, undefined, '', 0), lookups: 1, cachedPath: '/', pathEpoch: 0 }
  readonly #byId = new Map<number, Node>([[ROOT_ID, this.root]])
  /** Most inodes have one name: the node itself; a Set only for hard links (saves a Set per node). */
  readonly #byIno = new Map<number, Node | Set<Node>>()
  #next = ROOT_ID + 1
  /** Moves on whenever a node's name or parent changes: every cached path is stale then. */
  #pathEpoch = 0
  /**
   * Directories byPath found, by path: a copy-up's or a listing's invalidation names a file by its
   * path, and walking a deep path's names took 2% of the daemon's time in `chmod -R`. Each is
   * checked before use (it still answers for its name, at that path), so nothing here needs
   * forgetting; bounded by clearing.
   */
  readonly #dirs = new Map<string, Node>()

  get size(): number {
    return this.#byId.size
  }

  get(id: number): Node | undefined {
    return this.#byId.get(id)
  }

  /** The merged-view path ('/a/b'), or undefined for a node whose name is gone (unlinked). Built on
   *  its parent's path, which is kept: a file's path then costs one concatenation. */
  path(node: Node): string | undefined {
    if (node === this.root) return '/'
    const base = node.parent === undefined ? undefined : this.#dirPath(node.parent)
    return base === undefined ? undefined : base === '/' ? '/' + node.name : `${base}/${node.name}`
  }

  #dirPath(dir: Node): string | undefined {
    if (dir.pathEpoch === this.#pathEpoch) return dir.cachedPath
    const path = this.path(dir)
    dir.cachedPath = path
    dir.pathEpoch = this.#pathEpoch
    return path
  }

  childPath(parent: Node, name: string): string | undefined {
    const base = this.path(parent)
    return base === undefined ? undefined : base === '/' ? '/' + name : `${base}/${name}`
  }

  /** Count one kernel reference to (parent, name), creating the node on first sight. */
  remember(parent: Node, name: string, ino: number): Node {
    let node = parent.children?.get(name)
    if (!node) {
      node = newNode(this.#next++, parent, name, ino)
      this.#byId.set(node.id, node)
      setChild(parent, name, node)
    }
    if (node.ino !== ino) {
      this.#unindexIno(node)
      node.ino = ino
    }
    this.#indexIno(node)
    node.lookups++
    return node
  }

  /** The inode number `node` shows is `ino` now (a copy-up gave it the copy's own). */
  setIno(node: Node, ino: number): void {
    if (node.ino === ino) return
    this.#unindexIno(node)
    node.ino = ino
    this.#indexIno(node)
  }

  /** `count` node ids no node of this table will take: the first. */
  reserve(count: number): number {
    const first = this.#next
    this.#next += count
    return first
  }

  /** A node C made (an id reserve gave) for (parent, name), showing inode `ino`, with the kernel's one
   *  reference: it answers for the name, in place of any node that did. */
  adopt(id: number, parent: Node, name: string, ino: number): Node {
    const node = newNode(id, parent, name, ino)
    node.lookups = 1
    const old = parent.children?.get(name)
    if (old) this.retire(old)
    this.#byId.set(id, node)
    setChild(parent, name, node)
    this.#indexIno(node)
    return node
  }

  /** One more kernel reference to `node`, given by an entry reply made outside this table (a
   *  lookup answered in C). */
  counted(node: Node): void {
    node.lookups++
  }

  /** A node for a file that never had a name (an O_TMPFILE open), with the kernel's one reference;
   *  like an unlinked file's, its path is undefined. */
  unnamed(ino: number): Node {
    const node = newNode(this.#next++, undefined, '', ino)
    node.lookups = 1
    this.#byId.set(node.id, node)
    this.#indexIno(node)
    return node
  }

  forget(id: number, count: number): void {
    const node = this.#byId.get(id)
    if (!node || node === this.root) return
    node.lookups -= count
    if (node.lookups > 0) return
    this.#byId.delete(id)
    this.#unindexIno(node)
    this.retire(node)
  }

  /** The node that answers for `name` in `parent`, if any. */
  child(parent: Node, name: string): Node | undefined {
    return parent.children?.get(name)
  }

  /** The nodes under `dir`, at any depth (not `dir` itself). */
  *descendants(dir: Node): Generator<Node> {
    for (const child of dir.children?.values() ?? []) {
      yield child
      yield* this.descendants(child)
    }
  }

  /** The name is gone (unlink, rmdir): the node, if any, no longer has a path. */
  detach(parent: Node, name: string): void {
    const node = parent.children?.get(name)
    if (!node) return
    deleteChild(parent, name)
    node.parent = undefined
    this.#renamed(node)
  }

  /**
   * The node stops answering for its name; the next lookup of the name makes a new node (a new
   * kernel inode). The node keeps its path for what its open files still ask (getattr, setattr).
   */
  retire(node: Node): void {
    if (node.parent?.children?.get(node.name) === node) deleteChild(node.parent, node.name)
  }

  /** A rename: whatever was at the target is detached, the source node takes the new name. */
  move(parent: Node, name: string, newParent: Node, newName: string): void {
    const node = parent.children?.get(name)
    this.detach(newParent, newName)
    if (!node) return
    deleteChild(parent, name)
    node.parent = newParent
    node.name = newName
    setChild(newParent, newName, node)
    this.#renamed(node)
  }

  /** RENAME_EXCHANGE: the two nodes swap places. */
  exchange(parent: Node, name: string, newParent: Node, newName: string): void {
    const a = parent.children?.get(name)
    const b = newParent.children?.get(newName)
    if (a) deleteChild(parent, name)
    if (b) deleteChild(newParent, newName)
    if (a) {
      this.#renamed(a)
      a.parent = newParent
      a.name = newName
      setChild(newParent, newName, a)
    }
    if (b) {
      this.#renamed(b)
      b.parent = parent
      b.name = name
      setChild(parent, name, b)
    }
  }

  /** `node` moved or lost its name: the paths kept below it are stale. Only a node whose own path
   *  is kept can have any below it (a path is kept after its parent's), so a file costs nothing. */
  #renamed(node: Node): void {
    if (node.pathEpoch === this.#pathEpoch) this.#pathEpoch++
  }

  /** Nodes that reported inode `ino` (hard-link siblings). */
  /** Whether more than one node shows inode `ino` (the names of a hard link). */
  shared(ino: number): boolean {
    return this.#byIno.get(ino) instanceof Set
  }

  withIno(ino: number): Iterable<Node> {
    const found = this.#byIno.get(ino)
    return found === undefined ? [] : found instanceof Set ? found : [found]
  }

  /** The node that answers for a merged-view path ('/a/b'; for invalidations), if any. */
  byPath(path: string): Node | undefined {
    if (path === '/' || path === '') return this.root
    const cut = path.lastIndexOf('/')
    const dir = cut <= 0 ? this.root : this.#dirAt(path.slice(0, cut))
    return dir?.children?.get(path.slice(cut + 1))
  }

  /** byPath for a directory: remembered (#dirs), and walked name by name when it is not. */
  #dirAt(path: string): Node | undefined {
    const known = this.#dirs.get(path)
    if (known !== undefined && this.#answers(known) && this.#dirPath(known) === path) return known
    let node: Node | undefined = this.root
    for (const part of path.split('/')) {
      if (part === '') continue
      node = node.children?.get(part)
      if (!node) return undefined
    }
    if (this.#dirs.size >= DIRS_MAX) this.#dirs.clear()
    this.#dirs.set(path, node)
    return node
  }

  /** Whether `node` still answers for its name (it was not forgotten, detached or retired). */
  #answers(node: Node): boolean {
    return node.parent?.children?.get(node.name) === node
  }

  #indexIno(node: Node): void {
    const found = this.#byIno.get(node.ino)
    if (found === undefined) this.#byIno.set(node.ino, node)
    else if (found instanceof Set) found.add(node)
    else if (found !== node) this.#byIno.set(node.ino, new Set([found, node]))
  }

  #unindexIno(node: Node): void {
    const found = this.#byIno.get(node.ino)
    if (found === node) this.#byIno.delete(node.ino)
    else if (found instanceof Set) {
      found.delete(node)
      if (found.size === 1) this.#byIno.set(node.ino, found.values().next().value as Node)
    }
  }
}

function newNode(id: number, parent: Node | undefined, name: string, ino: number): Node {
  return {
    id, parent, name, lookups: 0, ino, opened: false, fast: false, cow: false, noCaps: false, made: false, probe: false,
    positive: false, tainted: false, named: false, attrsExpired: false, ctimeExpired: false, cachedPath: undefined, pathEpoch: -1,
    children: undefined,
  }
}

/** `node` answers for `name` in `parent`. */
function setChild(parent: Node, name: string, node: Node): void {
  if (parent.children === undefined) parent.children = new Map()
  parent.children.set(name, node)
}

/** Nothing answers for `name` in `parent`; a directory with no names known holds no map. */
function deleteChild(parent: Node, name: string): void {
  const children = parent.children
  if (children?.delete(name) && children.size === 0) parent.children = undefined
}
