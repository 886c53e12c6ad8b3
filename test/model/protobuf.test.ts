import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  decodePackedVarints,
  ProtoCursor,
  ProtoMessage,
  writeMessageToFile,
} from '../../src/model/protobuf.js';

test('encodes varints (negative int64 as ten bytes), strings and nested lengths per the wire format', async () => {
  const inner = new ProtoMessage().varint(1, 300).string(2, 'hi');
  const m = new ProtoMessage()
    .varint(1, -1)
    .message(3, inner)
    .packedVarints(4, [1, -2, 2 ** 40]);
  const bytes = await m.toBytes();
  assert.deepEqual(
    [...bytes.subarray(0, 11)],
    [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  );
  // field 3, LEN 7: [08 ac 02] [12 02 'h' 'i']
  assert.deepEqual(
    [...bytes.subarray(11, 20)],
    [0x1a, 0x07, 0x08, 0xac, 0x02, 0x12, 0x02, 0x68, 0x69],
  );
  assert.equal(m.size(), bytes.length);
  const packed = bytes.subarray(22);
  assert.deepEqual(decodePackedVarints(packed), [1n, -2n, 2n ** 40n]);
});

test('lazy fields stream through the file writer and are read back with skips', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'proto-'));
  try {
    const file = join(dir, 'm.pb');
    const big = 3_000_000; // over the write buffer: goes straight to the file
    const m = new ProtoMessage()
      .lazyBytes(9, big, async (emit) => {
        for (let i = 0; i < 3; i++) await emit(new Uint8Array(big / 3).fill(i + 1));
      })
      .string(8, 'after');
    const fh = await open(file, 'w');
    assert.equal(await writeMessageToFile(m, fh), m.size());
    await fh.close();
    const rh = await open(file, 'r');
    try {
      const c = new ProtoCursor(rh, 0, m.size());
      const first = await c.next();
      assert.deepEqual(first, { fieldNumber: 9, wireType: 2, value: BigInt(big) });
      c.skip(Number(first.value));
      const second = await c.next();
      assert.equal(second.fieldNumber, 8);
      assert.equal(new TextDecoder().decode(await c.readBytes(Number(second.value))), 'after');
      assert.ok(c.done);
    } finally {
      await rh.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a producer that writes the wrong number of bytes fails the write instead of corrupting the file', async () => {
  const short = new ProtoMessage().lazyBytes(9, 4, async (emit) => emit(new Uint8Array(3)));
  await assert.rejects(short.toBytes(), { message: 'producer wrote 3 bytes, expected 4' });
  const long = new ProtoMessage().lazyBytes(9, 4, async (emit) => emit(new Uint8Array(5)));
  await assert.rejects(long.toBytes(), { message: 'producer wrote more than 4 bytes' });
});
