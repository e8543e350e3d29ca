const UNITS: [string, number][] = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000],
  ["ms", 1],
];

/** A period as people write it: 604800000 → "7d", 5400000 → "1h30m", 1500 → "1s500ms". */
export function formatPeriod(ms: number): string {
  if (ms <= 0) return "0s";
  let left = Math.round(ms);
  let text = "";
  for (const [unit, size] of UNITS) {
    const count = Math.floor(left / size);
    if (count > 0) text += `${count}${unit}`;
    left -= count * size;
  }
  return text;
}
