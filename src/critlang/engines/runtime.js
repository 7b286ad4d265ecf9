// critlang's JavaScript runtime: exact decimals and the protocol-independent parts of
// an evaluation. The generated code of a protocol (engines/javascript.py) calls it.
//
// Numbers are decimals {c: BigInt coefficient, e: exponent}: c x 10^e. Arithmetic
// rounds to 28 significant digits, half to even, exactly as the Python engine's
// decimal context does, so both engines compute the same digits: 2.2 L to 1.98 L
// is a decline of exactly 10%, never 10.000000000000007%.
"use strict";

const critlangRuntime = (() => {
  const PRECISION = 28;
  const TEN = 10n;

  function digits(c) {
    return (c < 0n ? -c : c).toString().length;
  }

  function make(c, e) {
    return { c, e };
  }

  // Parse a plain decimal as typed or stored: "12", "-0.75", "3.", ".5". Null if not one.
  function parse(text) {
    const match = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(String(text));
    if (match === null || (match[2] === "" && (match[3] === undefined || match[3] === ""))) {
      return null;
    }
    const fraction = match[3] || "";
    const c = BigInt((match[2] || "0") + fraction);
    return make(match[1] === "-" ? -c : c, -fraction.length);
  }

  // Round half to even to PRECISION significant digits.
  function round(c, e) {
    const n = digits(c);
    if (n <= PRECISION) {
      return make(c, e);
    }
    const drop = n - PRECISION;
    const divisor = TEN ** BigInt(drop);
    let q = c / divisor;
    const r = c % divisor;
    const twice = 2n * (r < 0n ? -r : r);
    const sign = c < 0n ? -1n : 1n;
    if (twice > divisor || (twice === divisor && (q % 2n !== 0n))) {
      q += sign;
    }
    if (digits(q) > PRECISION) {
      return make(q / TEN, e + drop + 1);
    }
    return make(q, e + drop);
  }

  function aligned(a, b) {
    const e = Math.min(a.e, b.e);
    return [a.c * TEN ** BigInt(a.e - e), b.c * TEN ** BigInt(b.e - e), e];
  }

  function add(a, b) {
    const [x, y, e] = aligned(a, b);
    return round(x + y, e);
  }

  function sub(a, b) {
    const [x, y, e] = aligned(a, b);
    return round(x - y, e);
  }

  function mul(a, b) {
    return round(a.c * b.c, a.e + b.e);
  }

  // a / b, correctly rounded to PRECISION digits; b is never zero here.
  function div(a, b) {
    if (a.c === 0n) {
      return make(0n, a.e - b.e);
    }
    const negative = (a.c < 0n) !== (b.c < 0n);
    const n = a.c < 0n ? -a.c : a.c;
    const d = b.c < 0n ? -b.c : b.c;
    const shift = PRECISION + digits(d) - digits(n) + 1;
    const numerator = shift >= 0 ? n * TEN ** BigInt(shift) : n;
    const denominator = shift >= 0 ? d : d * TEN ** BigInt(-shift);
    let q = numerator / denominator;
    const rest = numerator % denominator;
    let e = a.e - b.e - shift;
    const extra = digits(q) - PRECISION;
    let up;
    if (extra > 0) {
      const divisor = TEN ** BigInt(extra);
      const dropped = q % divisor;
      q = q / divisor;
      e += extra;
      const twice = 2n * dropped;
      up = twice > divisor || (twice === divisor && (rest > 0n || q % 2n !== 0n));
    } else {
      const twice = 2n * rest;
      up = twice > denominator || (twice === denominator && q % 2n !== 0n);
    }
    if (up) {
      q += 1n;
    }
    if (digits(q) > PRECISION) {
      q /= TEN;
      e += 1;
    }
    return make(negative ? -q : q, e);
  }

  function compare(a, b) {
    const [x, y] = aligned(a, b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function isZero(a) {
    return a.c === 0n;
  }

  // A decimal as plain text without trailing zeros: "10", "0.75", "-1.5".
  function text(a) {
    let c = a.c;
    let e = a.e;
    while (e < 0 && c !== 0n && c % TEN === 0n) {
      c /= TEN;
      e += 1;
    }
    if (c === 0n) {
      return "0";
    }
    const sign = c < 0n ? "-" : "";
    let body = (c < 0n ? -c : c).toString();
    if (e >= 0) {
      return sign + body + "0".repeat(e);
    }
    const places = -e;
    if (body.length <= places) {
      body = "0".repeat(places - body.length + 1) + body;
    }
    return sign + body.slice(0, body.length - places) + "." + body.slice(body.length - places);
  }

  // ---- three-valued logic: true, false, null (unknown) ----

  function and(values) {
    if (values.includes(false)) return false;
    return values.includes(null) ? null : true;
  }

  function or(values) {
    if (values.includes(true)) return true;
    return values.includes(null) ? null : false;
  }

  function atLeast(count, values) {
    let met = 0;
    let open = 0;
    for (const value of values) {
      if (value === true) met += 1;
      else if (value === null) open += 1;
    }
    if (met >= count) return true;
    return met + open < count ? false : null;
  }

  // A score: the weights (BigInt, whole) of the true operands reach the threshold,
  // or those of the true and unknown ones together cannot.
  function score(threshold, weights, values) {
    let sure = 0n;
    let possible = 0n;
    values.forEach((value, i) => {
      if (value === true) sure += weights[i];
      if (value !== false) possible += weights[i];
    });
    if (sure >= threshold) return true;
    return possible < threshold ? false : null;
  }

  // ---- histories: ir.Aggregate's Kleene rules, word for word ----

  // Two values of one kind: decimals by value, dates (ISO text) and codes as text.
  function order(a, b) {
    if (typeof a === "object") return compare(a, b);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  // `entries`: the history (null when not on record), each an object of its fields;
  // `where`, `of`: functions of an entry (null when absent); `field`: the entry's date.
  function aggregate(op, entries, where, of, field) {
    if (entries === null || entries === undefined) return null;
    const selected = [];
    let open = false;
    for (const entry of entries) {
      const test = where === null ? true : where(entry);
      if (test === true) selected.push(entry);
      else if (test === null) open = true;
    }
    if (op === "exists") return selected.length > 0 ? true : open ? null : false;
    if (open) return null;
    if (op === "count") return parse(String(selected.length));
    let chosen = selected;
    if (op === "latest" || op === "earliest") {
      if (selected.length === 0) return null;
      const sign = op === "latest" ? 1 : -1;
      let day = selected[0][field];
      for (const entry of selected) {
        if (order(entry[field], day) * sign > 0) day = entry[field];
      }
      chosen = selected.filter((entry) => entry[field] === day);
    }
    const values = chosen.map(of);
    if (values.includes(null)) return null;
    if (op === "sum") return values.reduce((total, value) => add(total, value), parse("0"));
    if (values.length === 0) return null;
    if (op === "latest" || op === "earliest") {
      return values.every((value) => order(value, values[0]) === 0) ? values[0] : null;
    }
    const sign = op === "max" ? 1 : -1;
    return values.reduce((best, value) => (order(value, best) * sign > 0 ? value : best));
  }

  // ---- status and missing data, from a protocol's description ----

  function status(protocol, trace) {
    let settled = true;
    for (const criterion of protocol.criteria) {
      const value = trace[criterion.value];
      const through = criterion.kind === "inclusion";
      if (value === !through) return "ineligible";
      if (value !== through) settled = false;
    }
    return settled ? "eligible" : "undetermined";
  }

  // Elements with no value under the unknown parts of the unknown criteria, when the
  // status is undetermined (a definite status needs no more data).
  function missing(protocol, trace, env) {
    if (status(protocol, trace) !== "undetermined") return [];
    const visit = (id) => {
      const node = protocol.nodes[id];
      // A selector over an incomplete history may be known and still only a bound of an
      // unknown value (lowering's open world): the history may lack the deciding entry.
      if (node !== undefined && node.incomplete !== undefined && env[node.incomplete] != null) {
        const found = node.kids.filter((kid) => trace[kid] === null).flatMap(visit);
        return found.length > 0 ? found : [node.incomplete];
      }
      if (trace[id] !== null) return [];
      if (node.element !== undefined) {
        const value = env[node.element];
        return value === null || value === undefined ? [node.element] : [];
      }
      if (node.definition !== undefined) return visit(node.definition);
      let found = node.kids.filter((kid) => trace[kid] === null).flatMap(visit);
      if (found.length === 0) {
        // Unknown though no operand is (a zero divisor): look below every operand.
        found = node.kids.flatMap(visit);
      }
      return found;
    };
    const found = protocol.criteria.flatMap((c) => (trace[c.value] === null ? visit(c.value) : []));
    return [...new Set(found)];
  }

  // ---- calendar arithmetic (ir.DateShift, ir.DateDiff), as CQL does it ----
  // Dates are ISO text, YYYY-MM-DD, which compares as the calendar does. A partial date
  // (YYYY or YYYY-MM, as a form may give) is read as its first or last possible day.

  function monthLength(year, month) {
    if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
    return [4, 6, 9, 11].includes(month) ? 30 : 31;
  }

  function iso(year, month, day) {
    if (year < 1 || year > 9999) return null;
    const pad = (n, width) => String(n).padStart(width, "0");
    return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
  }

  function parts(date) {
    return [Number(date.slice(0, 4)), Number(date.slice(5, 7)), Number(date.slice(8, 10))];
  }

  function day(value, bound) {
    if (value === null || value === undefined) return null;
    if (value.length === 10) return value;
    const year = Number(value.slice(0, 4));
    const month = value.length === 7 ? Number(value.slice(5, 7)) : bound === "latest" ? 12 : 1;
    const last = bound === "latest" ? monthLength(year, month) : 1;
    return iso(year, month, last);
  }

  // Days since 0000-03-01 (the year counted from March, so a leap day ends it).
  function dayNumber(date) {
    const [y0, m, d] = parts(date);
    const y = m > 2 ? y0 : y0 - 1;
    const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
    return y * 365 + Math.floor(y / 4) - Math.floor(y / 100) + Math.floor(y / 400) + doy;
  }

  function fromDayNumber(n) {
    const era = Math.floor(n / 146097);
    const doe = n - era * 146097;
    const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
    const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    const mp = Math.floor((5 * doy + 2) / 153);
    const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
    const m = mp < 10 ? mp + 3 : mp - 9;
    return iso(yoe + era * 400 + (m <= 2 ? 1 : 0), m, d);
  }

  function shiftMonths(date, months) {
    const [y, m, d] = parts(date);
    const total = y * 12 + (m - 1) + months;
    const year = Math.floor(total / 12);
    const month = total - year * 12 + 1;
    if (year < 1 || year > 9999) return null;
    return iso(year, month, Math.min(d, monthLength(year, month)));
  }

  function shiftDate(date, amount, unit) {
    if (unit === "day" || unit === "week") {
      return fromDayNumber(dayNumber(date) + amount * (unit === "week" ? 7 : 1));
    }
    return shiftMonths(date, amount * (unit === "year" ? 12 : 1));
  }

  // Whole units from start to end: the most n with start + n units <= end; negative
  // (the same count the other way) when end is before start.
  function unitsBetween(unit, start, end) {
    if (end < start) return -unitsBetween(unit, end, start);
    if (unit === "day" || unit === "week") {
      return Math.floor((dayNumber(end) - dayNumber(start)) / (unit === "week" ? 7 : 1));
    }
    const [sy, sm] = parts(start);
    const [ey, em] = parts(end);
    const months = (ey - sy) * 12 + (em - sm);
    let count = unit === "month" ? months : Math.floor(months / 12);
    const moved = shiftMonths(start, count * (unit === "year" ? 12 : 1));
    if (moved === null || moved > end) count -= 1;
    return count;
  }

  function dateDiff(unit, start, end) {
    return parse(String(unitsBetween(unit, start, end)));
  }

  return {
    parse,
    add,
    sub,
    mul,
    div,
    compare,
    isZero,
    text,
    and,
    or,
    atLeast,
    score,
    aggregate,
    status,
    missing,
    day,
    shiftDate,
    dateDiff,
  };
})();

if (typeof module !== "undefined") {
  module.exports = critlangRuntime;
}
