/**
 * An API keys file in a directory laid out like a mounted Kubernetes Secret: the file is a
 * symlink through `..data`, and a rotation writes a new directory and renames `..data` onto it,
 * so the file is never written in place.
 */
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeysDir {
  /** What API_KEYS_FILE names. */
  readonly path: string;
  /** Swaps in new content the way the kubelet does. */
  rotate(text: string): Promise<void>;
  remove(): Promise<void>;
}

export async function secretKeysFile(text: string, key = 'keys'): Promise<KeysDir> {
  const dir = await mkdtemp(join(tmpdir(), 'gpt2-keys-'));
  let version = 0;
  const write = async (content: string): Promise<string> => {
    const name = `..v${++version}`;
    await mkdir(join(dir, name));
    await writeFile(join(dir, name, key), content);
    return name;
  };
  await symlink(await write(text), join(dir, '..data'));
  await symlink(join('..data', key), join(dir, key));
  return {
    path: join(dir, key),
    async rotate(content) {
      const name = await write(content);
      await symlink(name, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
