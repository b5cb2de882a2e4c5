// Writes native/kernel_checks.h: for every kernel the addon runs, a struct of
// its arguments and a binder that reads them from JavaScript and checks them,
// all generated from the declarations in src/kernels.ts (argument types, the
// region each buffer covers, derived sizes, conditions, which buffers are
// written). The binding (native/binding.cc) calls a binder, then the kernel;
// it holds no length or overlap check of its own, so the checks and the
// declarations that plan passes read cannot drift apart.
//
//   npm run gen:kernel-checks        rewrite the header
// test/kernel-checks.test.ts fails while the header is not what this writes.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Expr } from '../src/kernel-expr.js';
import { KERNELS, type ArgDecl, type KernelDecl } from '../src/kernels.js';

export const HEADER_PATH = fileURLToPath(new URL('../native/kernel_checks.h', import.meta.url));

const CPP_TYPE = { int: 'int64_t', bool: 'bool', float: 'double' } as const;

function structName(k: KernelDecl): string {
  return `${k.name[0].toUpperCase()}${k.name.slice(1)}Call`;
}

/** The kinds of the names a kernel's expressions may read. */
function nameKinds(k: KernelDecl): Map<string, 'value' | 'list' | 'buffer'> {
  const kinds = new Map<string, 'value' | 'list' | 'buffer'>();
  for (const a of k.args) {
    if (a.kind === 'fields') for (const f of a.fields) kinds.set(f, 'value');
    else kinds.set(a.name, a.kind === 'indices' ? 'list' : a.kind === 'buffer' ? 'buffer' : 'value');
  }
  for (const l of k.lets) kinds.set(l.name, 'value');
  return kinds;
}

/** C++ for an expression over the call struct `c`, in the binder's checked arithmetic. */
function cpp(e: Expr, kinds: Map<string, 'value' | 'list' | 'buffer'>, where: string): string {
  const sub = (x: Expr): string => cpp(x, kinds, where);
  const named = (x: Expr, want: readonly string[]): string => {
    if (x.op !== 'name' || !want.includes(kinds.get(x.name) ?? '')) throw new Error(`${where}: expected a ${want.join(' or ')} name`);
    return `c.${x.name}`;
  };
  switch (e.op) {
    case 'num':
      return String(e.value);
    case 'name':
      if (kinds.get(e.name) !== 'value') throw new Error(`${where}: '${e.name}' is not a number it declares`);
      return `c.${e.name}`;
    case 'not':
      return `!(${sub(e.arg)})`;
    case 'neg':
      return `args.Sub(0, ${sub(e.arg)})`;
    case 'if':
      return `(${sub(e.cond)} ? ${sub(e.then)} : ${sub(e.else)})`;
    case 'call': {
      const [a, b, c, d, f] = e.args;
      switch (e.fn) {
        case 'span':
          return `args.MatrixSpan(${sub(a)}, ${sub(b)}, ${sub(c)})`;
        case 'prod':
          return `args.Prod(${named(a, ['list'])})`;
        case 'extent':
          return `args.Extent(${named(a, ['list'])}, ${named(b, ['list'])})`;
        case 'len':
          return a.op === 'name' && kinds.get(a.name) === 'buffer' ? `c.${a.name}.length` : `${named(a, ['list'])}.n`;
        case 'has':
          return `${named(a, ['buffer'])}.present`;
        case 'convOut':
          return `Args::ConvOut(${[a, b, c, d, f].map(sub).join(', ')})`;
      }
      throw new Error(`${where}: unknown function`);
    }
    default: {
      const checked = { '+': 'Add', '-': 'Sub', '*': 'Mul', '/': 'Div', '%': 'Mod' } as Record<string, string>;
      if (e.op in checked) return `args.${checked[e.op]}(${sub(e.left)}, ${sub(e.right)})`;
      return `(${sub(e.left)} ${e.op} ${sub(e.right)})`;
    }
  }
}

function message(text: string, kinds: Map<string, string>, where: string): string {
  const parts = text.split(/\{(\w+)\}/);
  return parts
    .map((p, i) => {
      if (i % 2 === 0) return JSON.stringify(p);
      if (kinds.get(p) !== 'value') throw new Error(`${where}: the message reads '${p}', which is not a number`);
      return `std::to_string(c.${p})`;
    })
    .filter((p) => p !== '""')
    .join(' + ');
}

// An access decided by the attributes chooses between writing and accumulating (its type
// says so): written either way.
const written = (a: Extract<ArgDecl, { kind: 'buffer' }>): boolean => typeof a.access === 'function' || a.access !== 'read';

function binder(k: KernelDecl): string {
  const kinds = nameKinds(k);
  const S = structName(k);
  const members: string[] = [];
  const reads: string[] = [];
  k.args.forEach((a, i) => {
    const q = JSON.stringify(a.name);
    switch (a.kind) {
      case 'attr':
        members.push(`${CPP_TYPE[a.type]} ${a.name};`);
        if (a.type === 'int') reads.push(`c.${a.name} = args.Int(${i}, ${q}${a.max === undefined ? '' : `, ${a.max}`});`);
        else if (a.type === 'float') reads.push(`c.${a.name} = args.Number(${i}, ${q});`);
        else if (a.default !== undefined) reads.push(`c.${a.name} = args.OptionalBool(${i}, ${q}, ${a.default});`);
        else reads.push(`c.${a.name} = args.Bool(${i}, ${q});`);
        break;
      case 'fields':
        members.push(`int64_t ${a.fields.join(', ')};`);
        reads.push(`{`, `  int64_t f[${a.fields.length}];`, `  args.Fields(${i}, ${q}, f, ${a.fields.length}, ${a.max});`);
        a.fields.forEach((f, j) => reads.push(`  c.${f} = f[${j}];`));
        reads.push(`}`);
        break;
      case 'indices':
        members.push(`Indices ${a.name};`);
        reads.push(`static_assert(${a.maxLength} <= kMaxIndices, "${k.name}.${a.name}: more entries than Indices holds");`);
        reads.push(`c.${a.name} = args.List(${i}, ${q}, ${a.maxLength});`);
        break;
      case 'buffer':
        if (a.int32) throw new Error(`${k.name}.${a.name}: the addon takes no int32 buffers`);
        members.push(`Span ${a.name};`);
        reads.push(`c.${a.name} = args.${a.optional ? 'OptionalFloats' : 'Floats'}(${i}, ${q});`);
        break;
    }
  });
  const lets = k.lets.map((l) => {
    members.push(`int64_t ${l.name};`);
    return `c.${l.name} = ${cpp(l.expr, kinds, `${k.name} let ${l.name}`)};`;
  });
  const checks = k.checks.map((ch) => `if (!${wrap(cpp(ch.expr, kinds, `${k.name} check`))}) args.Fail(${message(ch.message, kinds, k.name)});`);
  const regions = k.args
    .filter((a): a is Extract<ArgDecl, { kind: 'buffer' }> => a.kind === 'buffer')
    .map((a) => {
      const where = `${k.name}.${a.name}`;
      const offset = a.offset === undefined ? '0' : cpp(a.offset, kinds, where);
      return `args.Fits(c.${a.name}, ${JSON.stringify(a.name)}, ${offset}, ${cpp(a.size, kinds, where)}, ${written(a)}${a.inPlace ? ', true' : ''}),`;
    });
  const signature = `${k.name}(${k.args.map((a) => a.name).join(', ')})`;
  return [
    `// ${signature}`,
    `struct ${S} {`,
    ...members.map((m) => `  ${m}`),
    `};`,
    ``,
    `inline ${S} Bind${S.slice(0, -4)}(const ArgList& info) {`,
    `  Args args(info, ${JSON.stringify(k.name)});`,
    `  ${S} c{};`,
    ...[...reads, ...lets, ...checks].map((l) => `  ${l}`),
    `  args.Disjoint({`,
    ...regions.map((r) => `      ${r}`),
    `  });`,
    `  return c;`,
    `}`,
  ].join('\n');
}

function wrap(s: string): string {
  return s.startsWith('(') && s.endsWith(')') ? s : `(${s})`;
}

/** The header's text, from the declarations. */
export function kernelChecksHeader(): string {
  const kernels = [...KERNELS.values()].filter((k) => k.runs === 'native');
  return [
    `// Generated by scripts/kernel-checks.ts from the kernel declarations in src/kernels.ts: do not`,
    `// edit (npm run gen:kernel-checks writes it again; test/kernel-checks.test.ts fails while it is`,
    `// stale). One struct and one binder per kernel: Bind<Kernel>(info) reads the arguments, refuses`,
    `// wrong types and bad sizes, checks each buffer holds the region the call covers and that no`,
    `// written region shares memory with another, and returns the arguments.`,
    `#pragma once`,
    ``,
    `#include <napi.h>`,
    ``,
    `#include <cstdint>`,
    `#include <string>`,
    ``,
    `#include "binding_args.h"`,
    ``,
    `namespace modelslice::binding {`,
    ``,
    kernels.map(binder).join('\n\n'),
    ``,
    `}  // namespace modelslice::binding`,
    ``,
  ].join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(HEADER_PATH, kernelChecksHeader());
  console.log(`wrote ${HEADER_PATH}`);
}
