/** A numeric command-line option of the nemesis tools: a finite number ≥ `min`, else an error naming the option. */
export function numberArg(name: string, raw: string | undefined, min: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, not ${JSON.stringify(raw)}`);
  return n;
}
