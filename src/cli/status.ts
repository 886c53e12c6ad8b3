// placeholder until its issue lands; replaced by the real command.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('gpt2-gateway: this command is not built yet\n');
  return 1;
}
