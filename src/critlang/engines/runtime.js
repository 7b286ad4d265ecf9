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

  // ---- dates (ISO text), as CQL adds durations: ir.DateShift ----

  function shiftDate(iso, amount, unit) {
    const [year, month, day] = iso.split("-").map(Number);
    let moved;
    if (unit === "day" || unit === "week") {
      moved = new Date(Date.UTC(year, month - 1, day + amount * (unit === "week" ? 7 : 1)));
    } else {
      const months = year * 12 + month - 1 + amount * (unit === "year" ? 12 : 1);
      const y = Math.floor(months / 12);
      const m = months - y * 12;
      const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
      moved = new Date(Date.UTC(y, m, Math.min(day, last)));
      moved.setUTCFullYear(y); // Date.UTC reads the years 0 to 99 as 1900 to 1999
    }
    const y = moved.getUTCFullYear();
    if (y < 1 || y > 9999) return null;
    const pad = (n, width) => String(n).padStart(width, "0");
    return `${pad(y, 4)}-${pad(moved.getUTCMonth() + 1, 2)}-${pad(moved.getUTCDate(), 2)}`;
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
      if (trace[id] !== null) return [];
      const node = protocol.nodes[id];
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
    aggregate,
    shiftDate,
    status,
    missing,
  };
})();

if (typeof module !== "undefined") {
  module.exports = critlangRuntime;
}
