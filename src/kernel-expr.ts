// The small expression language of kernel declarations (kernels.ts): how many
// elements a buffer must hold, at what offset its region starts, derived
// sizes and the conditions a call must meet, all written over the call's
// attributes. One parse serves two readers: `evaluate` here (the JavaScript
// kernels' checks and the tests), and scripts/kernel-checks.ts, which turns the
// same trees into the addon's argument checks (native/kernel_checks.h).
//
//   expr    := or ('?' expr ':' expr)?
//   or      := and ('||' and)*          and := cmp ('&&' cmp)*
//   cmp     := sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum)?
//   sum     := product (('+' | '-') product)*
//   product := unary (('*' | '/' | '%') unary)*
//   unary   := '!' unary | '-' unary | primary
//   primary := integer | name | name '(' expr (',' expr)* ')' | '(' expr ')'
//
// Values are integers (flags count as 0 and 1). The functions:
//   span(rows, cols, ld)      elements a rows x cols matrix with leading dimension ld reaches
//   prod(list)                product of an index list (a shape)
//   extent(shape, strides)    elements a strided view of `shape` reaches (0 when empty)
//   len(list or buffer)       entries of a list, elements of a buffer
//   has(buffer)               1 when an optional buffer was given
//   convOut(in, k, stride, pad, dilation)   output size along one axis, -1 when the kernel does not fit

export type Expr =
  | { readonly op: 'num'; readonly value: number }
  | { readonly op: 'name'; readonly name: string }
  | { readonly op: 'call'; readonly fn: ExprFunction; readonly args: readonly Expr[] }
  | { readonly op: 'not' | 'neg'; readonly arg: Expr }
  | { readonly op: BinaryOperator; readonly left: Expr; readonly right: Expr }
  | { readonly op: 'if'; readonly cond: Expr; readonly then: Expr; readonly else: Expr };

export type BinaryOperator = '+' | '-' | '*' | '/' | '%' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||';

export const EXPR_FUNCTIONS = { span: 3, prod: 1, extent: 2, len: 1, has: 1, convOut: 5 } as const;
export type ExprFunction = keyof typeof EXPR_FUNCTIONS;

const TOKEN = /\s*(?:(\d+)|([A-Za-z_]\w*)|(==|!=|<=|>=|&&|\|\||[-+*/%<>!?:(),]))/y;

/** Parses one expression; throws a SyntaxError that quotes it. */
export function parseExpr(source: string): Expr {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < source.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(source);
    if (m === null) {
      if (source.slice(at).trim() === '') break;
      throw new SyntaxError(`kernel expression '${source}': unexpected '${source.slice(at).trim()[0]}'`);
    }
    tokens.push(m[1] ?? m[2] ?? m[3]);
  }
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`kernel expression '${source}': ${what}`);
  };
  const peek = (): string | undefined => tokens[i];
  const take = (t: string): void => {
    if (tokens[i] !== t) fail(`expected '${t}'${tokens[i] === undefined ? ' at the end' : ` before '${tokens[i]}'`}`);
    i++;
  };
  const binary = (next: () => Expr, ops: readonly string[]) => (): Expr => {
    let left = next();
    while (ops.includes(peek() ?? '')) {
      const op = tokens[i++] as BinaryOperator;
      left = { op, left, right: next() };
    }
    return left;
  };
  const primary = (): Expr => {
    const t = tokens[i++];
    if (t === undefined) return fail('ends too soon');
    if (t === '(') {
      const e = expr();
      take(')');
      return e;
    }
    if (/^\d/.test(t)) return { op: 'num', value: Number(t) };
    if (!/^[A-Za-z_]/.test(t)) return fail(`unexpected '${t}'`);
    if (peek() !== '(') return { op: 'name', name: t };
    if (!(t in EXPR_FUNCTIONS)) fail(`unknown function ${t}`);
    i++;
    const args: Expr[] = [expr()];
    while (peek() === ',') {
      i++;
      args.push(expr());
    }
    take(')');
    const fn = t as ExprFunction;
    if (args.length !== EXPR_FUNCTIONS[fn]) fail(`${fn} takes ${EXPR_FUNCTIONS[fn]} arguments`);
    return { op: 'call', fn, args };
  };
  const unary = (): Expr => {
    if (peek() === '!' || peek() === '-') return { op: tokens[i++] === '!' ? 'not' : 'neg', arg: unary() };
    return primary();
  };
  const product = binary(unary, ['*', '/', '%']);
  const sum = binary(product, ['+', '-']);
  const cmp = (): Expr => {
    const left = sum();
    const op = peek();
    if (op === '==' || op === '!=' || op === '<' || op === '<=' || op === '>' || op === '>=') {
      i++;
      return { op, left, right: sum() };
    }
    return left;
  };
  const and = binary(cmp, ['&&']);
  const or = binary(and, ['||']);
  function expr(): Expr {
    const cond = or();
    if (peek() !== '?') return cond;
    i++;
    const then = expr();
    take(':');
    return { op: 'if', cond, then, else: expr() };
  }
  const e = expr();
  if (i < tokens.length) fail(`unexpected '${tokens[i]}'`);
  return e;
}

/** The names an expression reads (functions' list and buffer arguments included). */
export function exprNames(e: Expr, out = new Set<string>()): Set<string> {
  switch (e.op) {
    case 'num':
      break;
    case 'name':
      out.add(e.name);
      break;
    case 'call':
      for (const a of e.args) exprNames(a, out);
      break;
    case 'not':
    case 'neg':
      exprNames(e.arg, out);
      break;
    case 'if':
      exprNames(e.cond, out);
      exprNames(e.then, out);
      exprNames(e.else, out);
      break;
    default:
      exprNames(e.left, out);
      exprNames(e.right, out);
  }
  return out;
}

/** What a name stands for when evaluating: a number or flag, an index list, or a buffer (null when left out). */
export type ExprValue = number | boolean | readonly number[] | ArrayLike<number> | null | undefined;

/** Output size along one axis, or -1 when the (dilated) kernel does not fit the padded input. */
export function convOutSize(size: number, kernel: number, stride: number, pad: number, dilation: number): number {
  const span = dilation * (kernel - 1) + 1;
  const padded = size + 2 * pad;
  if (stride < 1 || padded < span) return -1;
  return Math.floor((padded - span) / stride) + 1;
}

/** Evaluates an expression over `scope` in exact integers; throws a RangeError past 2^53 or on division by zero. */
export function evaluate(e: Expr, scope: (name: string) => ExprValue): number {
  const num = (x: Expr): number => evaluate(x, scope);
  const list = (x: Expr): ArrayLike<number> => {
    if (x.op !== 'name') throw new TypeError('a list argument must be a name');
    const v = scope(x.name);
    if (v === null || v === undefined || typeof v !== 'object') throw new TypeError(`${x.name} is not a list or buffer`);
    return v;
  };
  const exact = (v: number): number => {
    if (!Number.isSafeInteger(v)) throw new RangeError('size overflow');
    return v;
  };
  switch (e.op) {
    case 'num':
      return e.value;
    case 'name': {
      const v = scope(e.name);
      if (typeof v === 'boolean') return v ? 1 : 0;
      if (typeof v !== 'number') throw new TypeError(`${e.name} is not a number`);
      return v;
    }
    case 'not':
      return num(e.arg) === 0 ? 1 : 0;
    case 'neg':
      return -num(e.arg);
    case 'if':
      return num(e.cond) !== 0 ? num(e.then) : num(e.else);
    case 'call': {
      const [a, b, c, d, f] = e.args;
      switch (e.fn) {
        case 'span': {
          const rows = num(a), cols = num(b);
          return rows === 0 || cols === 0 ? 0 : exact(exact((rows - 1) * num(c)) + cols);
        }
        case 'prod': {
          let n = 1;
          for (const v of Array.from(list(a))) n = exact(n * v);
          return n;
        }
        case 'extent': {
          const shape = Array.from(list(a)), strides = Array.from(list(b));
          if (shape.some((s) => s === 0)) return 0;
          let n = 1;
          shape.forEach((s, i) => (n = exact(n + exact((s - 1) * (strides[i] ?? 0)))));
          return n;
        }
        case 'len': {
          if (a.op !== 'name') throw new TypeError('len takes a name');
          const v = scope(a.name);
          return v === null || v === undefined || typeof v !== 'object' ? 0 : v.length;
        }
        case 'has': {
          if (a.op !== 'name') throw new TypeError('has takes a name');
          const v = scope(a.name);
          return v === null || v === undefined ? 0 : 1;
        }
        case 'convOut':
          return convOutSize(num(a), num(b), num(c), num(d), num(f));
      }
      break;
    }
    default: {
      if (e.op === '&&') return num(e.left) !== 0 && num(e.right) !== 0 ? 1 : 0;
      if (e.op === '||') return num(e.left) !== 0 || num(e.right) !== 0 ? 1 : 0;
      const l = num(e.left), r = num(e.right);
      switch (e.op) {
        case '+':
          return exact(l + r);
        case '-':
          return exact(l - r);
        case '*':
          return exact(l * r);
        case '/':
        case '%':
          if (r === 0) throw new RangeError('division by zero');
          return e.op === '/' ? Math.trunc(l / r) : l % r;
        case '==':
          return l === r ? 1 : 0;
        case '!=':
          return l !== r ? 1 : 0;
        case '<':
          return l < r ? 1 : 0;
        case '<=':
          return l <= r ? 1 : 0;
        case '>':
          return l > r ? 1 : 0;
        case '>=':
          return l >= r ? 1 : 0;
      }
    }
  }
  throw new TypeError(`kernel expression: unknown operation`);
}
