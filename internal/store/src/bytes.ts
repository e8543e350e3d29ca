/** postgres.js and cbor-x hand back Buffers; normalize so callers see one type. */
export function toBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
