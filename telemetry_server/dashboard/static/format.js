// How numbers and times are shown: in the reader's locale, values to 6 significant digits.

export function formatValue(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString();
  return value.toLocaleString(undefined, { maximumSignificantDigits: 6 });
}

export function formatTime(timestamp) {
  const when = new Date(timestamp);
  return Number.isNaN(when.getTime()) ? timestamp : when.toLocaleTimeString(undefined, { hour12: false });
}
