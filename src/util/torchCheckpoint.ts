// PyTorch checkpoints as written by torch.save, read as a flat state dict of float32 tensors (e.g. pytorch-fid's
// Inception weights, published in the legacy format). Two layouts:
// - zip (torch >= 1.6): a ZIP archive holding <name>/data.pkl (a pickle of the saved object),
//   <name>/data/<key> (the raw little-endian bytes of each storage) and <name>/version.
// - legacy (torch < 1.6, or _use_new_zipfile_serialization=False): one stream of pickles, the magic number
//   0x1950a86a20f9469cfc6c, the format version 1001, a sys_info dict (byte order, C type sizes), the main
//   pickle of the saved object, the list of storage keys; then for each key in that order its raw storage, an
//   8-byte little-endian element count and the little-endian values.
//
// The pickle is interpreted by a small stack machine that EXECUTES NOTHING (unlike Python's pickle module):
// it knows only the opcodes torch.save's pickles use (protocols 2 to 5), and GLOBAL resolves only an
// allow-list of names to inert builders: collections.OrderedDict, the tensor rebuild functions of
// torch._utils (storage, offset, size, stride: views of larger storages read correctly), the
// torch.*Storage types (the dtype of a storage) and torch.Tensor / Parameter. Any other global (os.system,
// builtins.eval, a model class) stops the load with its name. A storage is a persistent id
// ('storage', torch.FloatStorage, key, location, numel) naming the archive entry data/<key>; the legacy format
// adds view_metadata, None or (view_key, offset, size): a storage that is elements offset.. of storage key
// (written by torch before 0.4). The tar format of early torch versions is refused with a way out.
// Browser-safe. Errors: TorchCheckpointError, or ZipError for a damaged archive.

import { f16ToF32, type SafeTensor } from './safetensors.js';
import { type ReadZipOptions, readZip, type ZipArchive } from './zip.js';

export class TorchCheckpointError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'TorchCheckpointError';
  }
}

type Fail = (message: string) => never;

/** Largest tensor read (elements): a view with zero strides can be far larger than its storage. */
const MAX_ELEMENTS = 2 ** 31;

/** Largest view read that holds more elements than its storage (zero strides): 4 MiB of float32. */
const MAX_BROADCAST = 2 ** 20;

type StorageDtype =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

const STORAGE_TYPES = new Map<string, StorageDtype>([
  ['torch.FloatStorage', 'float32'],
  ['torch.DoubleStorage', 'float64'],
  ['torch.HalfStorage', 'float16'],
  ['torch.BFloat16Storage', 'bfloat16'],
  ['torch.LongStorage', 'int64'],
  ['torch.IntStorage', 'int32'],
  ['torch.ShortStorage', 'int16'],
  ['torch.CharStorage', 'int8'],
  ['torch.ByteStorage', 'uint8'],
  ['torch.BoolStorage', 'bool'],
]);

/** The only callables a pickle may name; each maps to an inert builder below. */
type Builder =
  | 'collections.OrderedDict'
  | 'torch._utils._rebuild_tensor_v2'
  | 'torch._utils._rebuild_tensor'
  | 'torch._utils._rebuild_parameter'
  | 'torch._utils._rebuild_parameter_with_state'
  | 'torch._tensor._rebuild_from_type_v2';

const BUILDERS: ReadonlySet<string> = new Set<Builder>([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
]);

/** Type objects that appear as arguments (_rebuild_from_type_v2's new type) and are never called. */
const TENSOR_TYPES: ReadonlySet<string> = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter']);

type DictKey = string | number | bigint | boolean | null;

/** `numel` elements from element `start` of the storage record `key` (start is 0 but in legacy views). */
interface Storage {
  readonly kind: 'storage';
  readonly key: string;
  readonly dtype: StorageDtype;
  readonly numel: number;
  readonly start: number;
}

interface TensorRef {
  readonly kind: 'tensor';
  readonly storage: Storage;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
}

type PyObject =
  | { readonly kind: 'tuple'; readonly items: readonly PyValue[] }
  | { readonly kind: 'list'; readonly items: PyValue[] }
  | { readonly kind: 'dict'; readonly entries: Map<DictKey, PyValue> }
  | { readonly kind: 'builder'; readonly name: Builder }
  | { readonly kind: 'storageType'; readonly name: string; readonly dtype: StorageDtype }
  | { readonly kind: 'tensorType'; readonly name: string }
  | Storage
  | TensorRef;

type PyValue = null | boolean | number | bigint | string | Uint8Array | PyObject;

type Kind = PyObject['kind'];

function is<K extends Kind>(v: PyValue, kind: K): v is Extract<PyObject, { kind: K }> {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && v.kind === kind;
}

/** A short description of a value for error messages. */
function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (v instanceof Uint8Array) return 'bytes';
  switch (typeof v) {
    case 'boolean':
      return 'a bool';
    case 'number':
    case 'bigint':
      return 'a number';
    case 'string':
      return `the str ${JSON.stringify(v.slice(0, 40))}`;
  }
  switch (v.kind) {
    case 'builder':
    case 'storageType':
    case 'tensorType':
      return v.name;
    case 'storage':
      return `storage ${v.key}`;
    default:
      return `a ${v.kind}`;
  }
}

const TAR_MESSAGE =
  'this is the tar checkpoint format of early torch.save versions, which is not read here; re-save it with a ' +
  "current torch: torch.save(torch.load(OLD, map_location='cpu'), NEW)";

// ---------------------------------------------------------------------------------------------------------
// Globals and the builders they stand for

function resolveGlobal(module: string, name: string, fail: Fail): PyValue {
  const full = `${module}.${name}`;
  const dtype = STORAGE_TYPES.get(full);
  if (dtype) return { kind: 'storageType', name: full, dtype };
  if (BUILDERS.has(full)) return { kind: 'builder', name: full as Builder };
  if (TENSOR_TYPES.has(full)) return { kind: 'tensorType', name: full };
  if (module === 'torch' && name.endsWith('Storage')) {
    return fail(
      `tensor storage type ${full} is not supported (float64/32/16, bfloat16, int and bool storages are)`,
    );
  }
  return fail(`refusing to load: the pickle asks for ${full}; only tensors and plain containers are read`);
}

function toInt(v: PyValue, what: string, fail: Fail): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    return fail(`${what} is ${describe(v)}, not a non-negative integer`);
  }
  return n;
}

function tupleItems(v: PyValue, what: string, fail: Fail): readonly PyValue[] {
  if (!is(v, 'tuple')) return fail(`${what} is ${describe(v)}, not a tuple`);
  return v.items;
}

function intTuple(v: PyValue, what: string, fail: Fail): number[] {
  return tupleItems(v, what, fail).map((x, i) => toInt(x, `${what}[${i}]`, fail));
}

/** torch._utils._rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...): a strided view of a storage. */
function rebuildTensor(args: readonly PyValue[], fail: Fail): TensorRef {
  const [storage, offset, size, stride] = args;
  if (args.length < 4 || !is(storage!, 'storage')) {
    return fail('a tensor rebuild call does not start with (storage, offset, size, stride)');
  }
  const shape = intTuple(size!, 'a tensor size', fail);
  const strides = intTuple(stride!, 'a tensor stride', fail);
  if (strides.length !== shape.length) fail(`a tensor of size (${shape}) has strides (${strides})`);
  return {
    kind: 'tensor',
    storage,
    offset: toInt(offset!, 'a storage offset', fail),
    shape,
    stride: strides,
  };
}

function asTensor(v: PyValue | undefined, what: string, fail: Fail): TensorRef {
  if (v === undefined || !is(v, 'tensor'))
    return fail(`${what} gets ${v === undefined ? 'nothing' : describe(v)}`);
  return v;
}

function orderedDict(args: readonly PyValue[], fail: Fail): PyObject {
  const entries = new Map<DictKey, PyValue>();
  if (args.length === 0) return { kind: 'dict', entries };
  const pairs = args[0]!;
  if (args.length > 1 || !is(pairs, 'list'))
    return fail('OrderedDict is called with arguments other than a list');
  for (const p of pairs.items) {
    const kv = tupleItems(p, 'an OrderedDict item', fail);
    if (kv.length !== 2) fail('an OrderedDict item is not a (key, value) pair');
    entries.set(dictKey(kv[0]!, fail), kv[1]!);
  }
  return { kind: 'dict', entries };
}

/** REDUCE: calls one of the allow-listed builders; nothing else is callable. */
function call(fn: PyValue, argsValue: PyValue, fail: Fail): PyValue {
  if (!is(fn, 'builder'))
    return fail(`the pickle calls ${describe(fn)}, which is not a tensor or container builder`);
  const args = tupleItems(argsValue, `the arguments of ${fn.name}`, fail);
  switch (fn.name) {
    case 'collections.OrderedDict':
      return orderedDict(args, fail);
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor':
      return rebuildTensor(args, fail);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return asTensor(args[0], fn.name, fail);
    case 'torch._tensor._rebuild_from_type_v2': {
      const [func, type, inner] = args;
      if (
        !(func !== undefined && is(func, 'builder') && func.name.startsWith('torch._utils._rebuild_tensor'))
      ) {
        return fail(`${fn.name} is asked to call ${func === undefined ? 'nothing' : describe(func)}`);
      }
      if (type === undefined || !is(type, 'tensorType')) {
        return fail(`${fn.name} is asked to make ${type === undefined ? 'nothing' : describe(type)}`);
      }
      return call(func, inner ?? null, fail);
    }
  }
}

function dictKey(k: PyValue, fail: Fail): DictKey {
  if (typeof k === 'object' && k !== null)
    return fail(`a dict key is ${describe(k)}; only str and int keys are read`);
  return k;
}

// ---------------------------------------------------------------------------------------------------------
// The pickle machine

const UNSUPPORTED_OPCODES = new Map<number, string>([
  [0x69, 'INST'],
  [0x6f, 'OBJ'],
  [0x82, 'EXT1'],
  [0x83, 'EXT2'],
  [0x84, 'EXT4'],
  [0x53, 'STRING'],
  [0x56, 'UNICODE'],
  [0x8f, 'EMPTY_SET'],
  [0x90, 'ADDITEMS'],
  [0x91, 'FROZENSET'],
  [0x92, 'NEWOBJ_EX'],
  [0x97, 'NEXT_BUFFER'],
  [0x98, 'READONLY_BUFFER'],
]);

/** Two's complement little-endian integer (LONG1 / LONG4), as a number when it is a safe integer. */
function decodeLong(b: Uint8Array): number | bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b.length > 0 && b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  const safe = BigInt(Number.MAX_SAFE_INTEGER);
  return v >= -safe && v <= safe ? Number(v) : v;
}

/** Where a pickle is: the bytes, where it starts, and what to call them in messages ('data.pkl', 'the file'). */
interface PickleSource {
  readonly data: Uint8Array;
  readonly start: number;
  readonly label: string;
}

/** One pickle from source.start: its value and the byte after its STOP. */
function unpickle(
  source: PickleSource,
  persistentLoad: (pid: PyValue) => PyValue,
  fail: Fail,
): { value: PyValue; end: number } {
  const { data, label } = source;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder();
  let pos = source.start;
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();

  const need = (n: number) => {
    if (!(n >= 0 && pos + n <= data.length)) fail(`${label} is truncated: ${n} bytes needed at byte ${pos}`);
  };
  const u8 = () => {
    need(1);
    return data[pos++]!;
  };
  const u16 = () => {
    need(2);
    pos += 2;
    return view.getUint16(pos - 2, true);
  };
  const u32 = () => {
    need(4);
    pos += 4;
    return view.getUint32(pos - 4, true);
  };
  const u64 = () => {
    need(8);
    pos += 8;
    const v = view.getBigUint64(pos - 8, true);
    return v > BigInt(data.length)
      ? fail(`a length of ${v} bytes at byte ${pos - 8} exceeds ${label}`)
      : Number(v);
  };
  const bytes = (n: number) => {
    need(n);
    pos += n;
    return data.subarray(pos - n, pos);
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail(`${label} is truncated: a text argument at byte ${pos} has no end`);
    const s = utf8.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const push = (v: PyValue) => stack.push(v);
  const pop = (): PyValue => {
    if (stack.length === 0) fail(`malformed pickle: the stack is empty at byte ${pos - 1}`);
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail(`malformed pickle: the stack is empty at byte ${pos - 1}`);
    return stack[stack.length - 1]!;
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const outer = marks.pop();
    if (!outer) fail(`malformed pickle: no MARK before byte ${pos - 1}`);
    stack = outer!;
    return items;
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) fail(`malformed pickle: memo entry ${i} is read before it is written`);
    return memo.get(i)!;
  };
  const textInt = (s: string) => {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^-?\d{1,15}$/.test(t))
      fail(`malformed pickle: ${JSON.stringify(s.slice(0, 20))} is not an integer`);
    return Number.parseInt(t, 10);
  };
  const dictOnTop = (what: string) => {
    const d = top();
    if (!is(d, 'dict')) return fail(`malformed pickle: ${what} on ${describe(d)}`);
    return d;
  };
  const listOnTop = (what: string) => {
    const l = top();
    if (!is(l, 'list')) return fail(`malformed pickle: ${what} on ${describe(l)}`);
    return l;
  };
  const setItems = (d: { entries: Map<DictKey, PyValue> }, items: PyValue[]) => {
    if (items.length % 2) fail('malformed pickle: SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) d.entries.set(dictKey(items[i]!, fail), items[i + 1]!);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail(`pickle protocol ${data[at + 1]} is newer than 5`);
        break;
      case 0x95: // FRAME: a length prefix only
        u64();
        break;
      case 0x2e: // STOP
        return { value: pop(), end: pos };
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x29: // EMPTY_TUPLE
        push({ kind: 'tuple', items: [] });
        break;
      case 0x74: // TUPLE
        push({ kind: 'tuple', items: popMark() });
        break;
      case 0x85: // TUPLE1
        push({ kind: 'tuple', items: [pop()] });
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push({ kind: 'tuple', items: [pop(), b] });
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push({ kind: 'tuple', items: [pop(), b, c] });
        break;
      }
      case 0x5d: // EMPTY_LIST
        push({ kind: 'list', items: [] });
        break;
      case 0x6c: // LIST
        push({ kind: 'list', items: popMark() });
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        listOnTop('APPEND').items.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        listOnTop('APPENDS').items.push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push({ kind: 'dict', entries: new Map() });
        break;
      case 0x64: {
        // DICT
        const d = { kind: 'dict' as const, entries: new Map<DictKey, PyValue>() };
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        dictOnTop('SETITEM').entries.set(dictKey(k, fail), v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(dictOnTop('SETITEMS'), items);
        break;
      }
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        need(4);
        pos += 4;
        push(view.getInt32(pos - 4, true));
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(decodeLong(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = u32();
        if (n > 64) fail(`an integer of ${n} bytes at byte ${at}: too large for a checkpoint`);
        push(decodeLong(bytes(n)));
        break;
      }
      case 0x49: {
        // INT (protocol 0; "00" / "01" are False / True)
        const s = line();
        push(s === '00' ? false : s === '01' ? true : textInt(s));
        break;
      }
      case 0x4c: // LONG (protocol 0)
        push(textInt(line()));
        break;
      case 0x47: // BINFLOAT: big-endian float64
        need(8);
        pos += 8;
        push(view.getFloat64(pos - 8, false));
        break;
      case 0x46: // FLOAT (protocol 0)
        push(Number.parseFloat(line()));
        break;
      case 0x58: // BINUNICODE
        push(utf8.decode(bytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8.decode(bytes(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8.decode(bytes(u64())));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        push(new TextDecoder('latin1').decode(bytes(u8())));
        break;
      case 0x54: // BINSTRING
        push(new TextDecoder('latin1').decode(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        push(bytes(u8()));
        break;
      case 0x42: // BINBYTES
        push(bytes(u32()));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(bytes(u64()));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: // PUT
        memo.set(textInt(line()), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x67: // GET
        push(memoGet(textInt(line())));
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        push(resolveGlobal(module, line(), fail));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          fail('malformed pickle: STACK_GLOBAL without names');
        push(resolveGlobal(module as string, name as string, fail));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        push(call(pop(), args, fail));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args), allowed for OrderedDict only
        const args = pop();
        const cls = pop();
        if (!(is(cls, 'builder') && cls.name === 'collections.OrderedDict')) {
          fail(`the pickle makes a new ${describe(cls)}; only OrderedDict is made this way`);
        }
        tupleItems(args, 'NEWOBJ arguments', fail);
        push({ kind: 'dict', entries: new Map() });
        break;
      }
      case 0x62: {
        // BUILD: the state of a state_dict (its _metadata) or of a tensor is not needed
        pop();
        const obj = top();
        if (!is(obj, 'dict') && !is(obj, 'tensor')) fail(`the pickle sets the state of ${describe(obj)}`);
        break;
      }
      case 0x51: // BINPERSID
        push(persistentLoad(pop()));
        break;
      case 0x50: // PERSID
        push(persistentLoad(line()));
        break;
      case 0x30: // POP
        if (stack.length) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      default: {
        const name = UNSUPPORTED_OPCODES.get(op);
        const what = name ? ` (${name}), which torch.save does not write` : '';
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}${what} at byte ${at}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The two layouts: the saved object, and the bytes of each storage record

function itemSize(dtype: StorageDtype): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
    case 'int16':
      return 2;
    case 'int8':
    case 'uint8':
    case 'bool':
      return 1;
  }
}

/** A checkpoint with its layout undone: the saved object and the raw bytes of each storage record by key. */
interface Unpacked {
  readonly top: PyValue;
  readonly storageBytes: (key: string) => Uint8Array;
}

type Format = 'zip' | 'legacy';

function detectFormat(bytes: Uint8Array, fail: Fail): Format {
  const startsWith = (sig: readonly number[], at = 0) => sig.every((b, i) => bytes[at + i] === b);
  const ustar = [0x75, 0x73, 0x74, 0x61, 0x72]; // tar: the format of early torch.save versions
  if (startsWith(ustar, 257)) fail(TAR_MESSAGE);
  if (bytes[0] === 0x80) return 'legacy'; // a pickle's PROTO opcode
  return 'zip'; // PK, or readZip names what the file is not
}

/** The parts of a persistent id ('storage', torch.XStorage, key, location, numel[, view_metadata]). */
interface StorageId {
  readonly key: string;
  readonly dtype: StorageDtype;
  readonly numel: number;
  readonly view: PyValue;
}

function storageId(pid: PyValue, fail: Fail): StorageId {
  const items = tupleItems(pid, 'a persistent id', fail);
  const [tag, type, key, , numelValue] = items;
  if (tag !== 'storage' || items.length < 5)
    fail(`a persistent id of ${describe(tag ?? null)}; only storages are read`);
  if (!is(type!, 'storageType')) return fail(`a storage of type ${describe(type!)}`);
  if (typeof key !== 'string') return fail(`a storage key is ${describe(key!)}`);
  const numel = toInt(numelValue!, `storage ${key}'s size`, fail);
  return { key, dtype: type.dtype, numel, view: items[5] ?? null };
}

/** The storage a key already names, after checking that this persistent id agrees with it. */
function knownStorage(storages: Map<string, Storage>, id: StorageId, fail: Fail): Storage | undefined {
  const known = storages.get(id.key);
  if (known && known.dtype !== id.dtype)
    fail(`storage ${id.key} is used as both ${known.dtype} and ${id.dtype}`);
  return known;
}

// The zip layout

/** The <name>/ folder holding data.pkl (torch names it after the file; 'archive' in newer versions). */
function archivePrefix(zip: ZipArchive, fail: Fail): string {
  const pkls = zip.entries.map((e) => e.name).filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length === 1) return pkls[0]!.slice(0, -'data.pkl'.length);
  if (pkls.length > 1)
    return fail(`${pkls.length} data.pkl entries (${pkls.join(', ')}): not one checkpoint`);
  if (zip.entries.some((e) => /^[^/]+\/(code|constants\.pkl)/.test(e.name))) {
    return fail(
      'a TorchScript archive (torch.jit.save), not a state dict: save model.state_dict() with torch.save',
    );
  }
  const some = zip.entries.slice(0, 4).map((e) => e.name);
  return fail(
    `no <name>/data.pkl entry (entries: ${some.join(', ') || 'none'}): not a torch.save checkpoint`,
  );
}

function checkByteOrder(zip: ZipArchive, prefix: string, fail: Fail): void {
  if (!zip.has(`${prefix}byteorder`)) return;
  const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
  if (order !== 'little') fail(`the storages are ${order}-endian; only little-endian checkpoints are read`);
}

/** persistent_load: ('storage', torch.XStorage, key, location, numel) -> the storage record (entry checked). */
function storageLoader(zip: ZipArchive, prefix: string, fail: Fail): (pid: PyValue) => PyValue {
  const storages = new Map<string, Storage>();
  const sizes = new Map(zip.entries.map((e) => [e.name, e.size]));
  return (pid) => {
    const id = storageId(pid, fail);
    const { key, dtype, numel } = id;
    const known = knownStorage(storages, id, fail);
    if (known) return known;
    const entry = `${prefix}data/${key}`;
    const size = sizes.get(entry);
    if (size === undefined) fail(`storage ${key} is missing: the archive has no ${entry}`);
    const bytes = numel * itemSize(dtype);
    if (size! < bytes) {
      fail(
        `storage ${key} (${entry}) has ${size} bytes, less than its ${numel} ${dtype} values (${bytes} bytes)`,
      );
    }
    const s: Storage = { kind: 'storage', key, dtype, numel, start: 0 };
    storages.set(key, s);
    return s;
  };
}

function unpackZip(bytes: Uint8Array, source: string, options: ReadZipOptions, fail: Fail): Unpacked {
  const zip = readZip(bytes, source, options);
  const prefix = archivePrefix(zip, fail);
  checkByteOrder(zip, prefix, fail);
  const pkl: PickleSource = { data: zip.read(`${prefix}data.pkl`), start: 0, label: 'data.pkl' };
  const { value } = unpickle(pkl, storageLoader(zip, prefix, fail), fail);
  return { top: value, storageBytes: (key) => zip.read(`${prefix}data/${key}`) };
}

// The legacy layout

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_VERSION = 1001;

function noPersistentIds(fail: Fail): (pid: PyValue) => PyValue {
  return (pid) => fail(`a persistent id (${describe(pid)}) outside the main pickle`);
}

/** sys_info: little_endian is the byte order of the machine that saved the file (its storage sizes use it). */
function checkSysInfo(info: PyValue, fail: Fail): void {
  if (!is(info, 'dict')) fail(`the legacy header's sys_info is ${describe(info)}, not a dict`);
  else if (info.entries.get('little_endian') === false) {
    fail('the file was saved on a big-endian machine; only little-endian checkpoints are read');
  }
}

/**
 * persistent_load: ('storage', torch.XStorage, key, location, numel, view_metadata) -> the storage record,
 * or a view of it: view_metadata (view_key, offset, size) names elements offset..offset+size of storage key.
 */
function legacyStorageLoader(roots: Map<string, Storage>, fail: Fail): (pid: PyValue) => PyValue {
  return (pid) => {
    const id = storageId(pid, fail);
    const { key, dtype, numel } = id;
    const known = knownStorage(roots, id, fail);
    if (known && known.numel !== numel) fail(`storage ${key} has both ${known.numel} and ${numel} elements`);
    const root: Storage = known ?? { kind: 'storage', key, dtype, numel, start: 0 };
    roots.set(key, root);
    if (id.view === null) return root;
    const view = tupleItems(id.view, `storage ${key}'s view_metadata`, fail);
    if (view.length !== 3) fail(`storage ${key}'s view_metadata is not (view_key, offset, size)`);
    const start = toInt(view[1]!, `the offset of a view of storage ${key}`, fail);
    const size = toInt(view[2]!, `the size of a view of storage ${key}`, fail);
    if (start + size > numel) {
      fail(`a view of storage ${key} takes elements ${start} to ${start + size}, but it has ${numel}`);
    }
    return { kind: 'storage', key, dtype, numel: size, start };
  };
}

/** The raw storages after the key list: for each key in list order, an int64 element count and the values. */
function legacyStorageRecords(
  bytes: Uint8Array,
  from: number,
  keys: PyValue,
  roots: ReadonlyMap<string, Storage>,
  fail: Fail,
): Map<string, Uint8Array> {
  if (!is(keys, 'list')) return fail(`the list of storage keys is ${describe(keys)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records = new Map<string, Uint8Array>();
  let pos = from;
  for (const key of keys.items) {
    if (typeof key !== 'string') return fail(`a storage key is ${describe(key)}`);
    const s = roots.get(key);
    if (!s) fail(`the file holds storage ${key}, which the pickle does not use`);
    if (records.has(key)) fail(`storage ${key} is listed twice`);
    if (pos + 8 > bytes.length)
      fail(`the file is truncated: storage ${key}'s element count (8 bytes at byte ${pos}) is missing`);
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(s!.numel))
      fail(`storage ${key} has ${count} elements at byte ${pos}, but the pickle says ${s!.numel}`);
    pos += 8;
    const n = s!.numel * itemSize(s!.dtype);
    if (n > bytes.length - pos) {
      fail(
        `the file is truncated: storage ${key} needs ${n} bytes at byte ${pos}, ${bytes.length - pos} are left`,
      );
    }
    records.set(key, bytes.subarray(pos, pos + n));
    pos += n;
  }
  for (const key of roots.keys())
    if (!records.has(key)) fail(`storage ${key} is used but has no data: it is not in the list of keys`);
  return records; // torch.load too ignores bytes after the last storage
}

function unpackLegacy(bytes: Uint8Array, fail: Fail): Unpacked {
  let pos = 0;
  const next = (load = noPersistentIds(fail)) => {
    const r = unpickle({ data: bytes, start: pos, label: 'the file' }, load, fail);
    pos = r.end;
    return r.value;
  };
  if (next() !== LEGACY_MAGIC)
    fail("a pickle that does not start with torch's legacy magic number: not a torch.save checkpoint");
  const version = next();
  if (version !== LEGACY_VERSION) {
    const v = typeof version === 'number' ? String(version) : describe(version);
    fail(`legacy checkpoint format version ${v}; only ${LEGACY_VERSION} is read`);
  }
  checkSysInfo(next(), fail);
  const roots = new Map<string, Storage>();
  const top = next(legacyStorageLoader(roots, fail));
  const keys = next();
  const records = legacyStorageRecords(bytes, pos, keys, roots, fail);
  return { top, storageBytes: (key) => records.get(key)! };
}

// ---------------------------------------------------------------------------------------------------------
// Tensors: storage values to float32, gathered through offset and strides

/** A storage's values as float32; float32 storages aligned in memory are viewed, not copied (only read). */
function storageToFloat32(bytes: Uint8Array, dtype: StorageDtype, n: number): Float32Array {
  if (dtype === 'float32' && bytes.byteOffset % 4 === 0)
    return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'float32':
      new Uint8Array(out.buffer).set(bytes.subarray(0, 4 * n)); // little-endian hosts
      break;
    case 'float64':
      for (let i = 0; i < n; i++) out[i] = v.getFloat64(8 * i, true);
      break;
    case 'float16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(v.getUint16(2 * i, true));
      break;
    case 'bfloat16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = v.getUint16(2 * i, true) << 16;
      break;
    }
    case 'int64':
      for (let i = 0; i < n; i++) out[i] = Number(v.getBigInt64(8 * i, true));
      break;
    case 'int32':
      for (let i = 0; i < n; i++) out[i] = v.getInt32(4 * i, true);
      break;
    case 'int16':
      for (let i = 0; i < n; i++) out[i] = v.getInt16(2 * i, true);
      break;
    case 'int8':
      for (let i = 0; i < n; i++) out[i] = v.getInt8(i);
      break;
    case 'uint8':
    case 'bool':
      for (let i = 0; i < n; i++) out[i] = v.getUint8(i);
      break;
  }
  return out;
}

/** Elements of the storage a view touches: offset + sum((size_i - 1) * stride_i) + 1 (0 when it is empty). */
function extent(t: TensorRef): number {
  if (t.shape.some((d) => d === 0)) return 0;
  return t.shape.reduce((e, d, i) => e + (d - 1) * t.stride[i]!, t.offset) + 1;
}

/** Row-major strides, ignoring dimensions of size 1 (whose stride never matters). */
function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/** The tensor's values in row-major order, in a new array. */
function gather(src: Float32Array, t: TensorRef, n: number): Float32Array {
  const { shape, stride, offset } = t;
  if (isContiguous(shape, stride)) return src.slice(offset, offset + n);
  const out = new Float32Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  let p = offset;
  for (let i = 0; i < n; i++) {
    out[i] = src[p]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      p += stride[d]!;
      if (++idx[d]! < shape[d]!) break;
      p -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Top level: a state dict, or a dict holding one under 'state_dict'; nested dicts flatten with '.'. */
function flatten(top: PyValue, fail: Fail): Map<string, TensorRef> {
  if (!is(top, 'dict')) return fail(`the checkpoint holds ${describe(top)}, not a dict of tensors`);
  const inner = top.entries.get('state_dict');
  const root = inner !== undefined && is(inner, 'dict') ? inner : top;
  const out = new Map<string, TensorRef>();
  const open = new Set<object>();
  const walk = (d: { entries: Map<DictKey, PyValue> }, prefix: string) => {
    if (open.has(d)) fail(`the dict at ${prefix || 'the top'} contains itself`);
    if (open.size >= 64) fail(`dicts nested more than 64 deep at ${prefix}`);
    open.add(d);
    for (const [k, v] of d.entries) {
      const name = prefix ? `${prefix}.${String(k)}` : String(k);
      if (is(v, 'dict')) walk(v, name);
      else if (is(v, 'tensor')) {
        if (out.has(name)) fail(`two tensors are named ${name} once nested names are joined with '.'`);
        out.set(name, v);
      } // other values (numbers, strings, lists) are not tensors of the state dict
    }
    open.delete(d);
  };
  walk(root, '');
  return out;
}

/** The tensors of the state dict, each gathered from its storage's values into a new float32 array. */
function readTensors(unpacked: Unpacked, fail: Fail): Map<string, SafeTensor> {
  const values = new Map<string, Float32Array>();
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of flatten(unpacked.top, fail)) {
    const { key, dtype, numel, start } = t.storage;
    if (extent(t) > numel) {
      const view =
        start > 0 ? ` (a view of ${numel} elements from element ${start})` : `, which has ${numel}`;
      fail(
        `tensor ${name} (size (${t.shape}), stride (${t.stride}), offset ${t.offset}) needs ${extent(t)} ` +
          `elements of storage ${key}${view}`,
      );
    }
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n > MAX_ELEMENTS) fail(`tensor ${name} has ${n} elements (size (${t.shape})): too large to read`);
    // Zero strides repeat a storage's values: the tensor can be far larger than the file (1 GiB from 6 KB).
    if (n > numel && n > MAX_BROADCAST) {
      fail(
        `tensor ${name} (size (${t.shape}), stride (${t.stride})) repeats the ${numel} elements of storage ${key} ` +
          `into ${n}: a broadcast view over ${MAX_BROADCAST} elements is not expanded; save it with .contiguous() ` +
          'or .clone() if it is real',
      );
    }
    let src = values.get(key);
    if (!src) {
      const bytes = unpacked.storageBytes(key);
      src = storageToFloat32(bytes, dtype, Math.floor(bytes.length / itemSize(dtype)));
      values.set(key, src);
    }
    out.set(name, { shape: t.shape, data: gather(src, { ...t, offset: start + t.offset }, n) });
  }
  return out;
}

function unpack(bytes: Uint8Array, source: string, options: ReadZipOptions, fail: Fail): Unpacked {
  const format = detectFormat(bytes, fail);
  switch (format) {
    case 'zip':
      return unpackZip(bytes, source, options, fail);
    case 'legacy':
      return unpackLegacy(bytes, fail);
  }
}

/**
 * The tensors of a torch.save checkpoint (zip or legacy format), by flattened name, as float32 (float64,
 * float16, bfloat16 and integer tensors converted). `source` (e.g. the file path) starts every error message;
 * `options` apply to the zip format.
 */
export function readTorchStateDict(
  bytes: Uint8Array,
  source: string,
  options: ReadZipOptions = {},
): Map<string, SafeTensor> {
  const fail: Fail = (message) => {
    throw new TorchCheckpointError(source, message);
  };
  return readTensors(unpack(bytes, source, options, fail), fail);
}
