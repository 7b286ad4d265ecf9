// Runs an ELM library in cql-execution, the reference JavaScript CQL engine.
//
// stdin: a JSON list of jobs {"library": <ELM JSON>, "expressions": [names],
//        "records": [{parameter: typed value}]}, all run in this one process.
// stdout: a JSON list, per job a list, per record an object {expression name: value}.
// A typed value is {"type": "Decimal" | "Quantity" | "Date" | "Boolean" | "String" | "List", ...};
// decimals travel as strings, so that nothing is rounded on the way in but by the engine itself.
'use strict';
const cql = require('cql-execution');

function parameter(typed) {
  switch (typed.type) {
    case 'Decimal':
      return parseFloat(typed.value);
    case 'Quantity':
      return new cql.Quantity(parseFloat(typed.value), typed.unit);
    case 'Date':
      return cql.Date.parse(typed.value);
    case 'History':
      // A list of entries, each a tuple of its fields: dates, decimals (as text), codes.
      return typed.value.map((entry) => {
        const tuple = {};
        for (const [name, field] of Object.entries(entry)) {
          if (field === null) tuple[name] = null;
          else if (field.date !== undefined) tuple[name] = cql.Date.parse(field.date);
          else if (field.decimal !== undefined) tuple[name] = parseFloat(field.decimal);
          else tuple[name] = field;
        }
        return tuple;
      });
    default:
      return typed.value; // Boolean, String, List of String
  }
}

function plain(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.map(plain);
  return String(value);
}

// No patients: every expression is in the Unfiltered context, fed by the parameters.
const NO_PATIENTS = { currentPatient: () => undefined, nextPatient: () => undefined };

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const out = [];
  for (const job of jobs) {
    const library = new cql.Library(job.library);
    const values = [];
    for (const record of job.records) {
      const parameters = {};
      for (const [name, typed] of Object.entries(record)) parameters[name] = parameter(typed);
      const results = await new cql.Executor(library, null, parameters).exec(NO_PATIENTS);
      const row = {};
      for (const name of job.expressions) row[name] = plain(results.unfilteredResults[name]);
      values.push(row);
    }
    out.push(values);
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
