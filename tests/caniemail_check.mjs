// Which HTML and CSS features of an email the major clients lack, by caniemail's data.
//
//     node tests/caniemail_check.mjs EMAIL.html   # prints JSON, see report() below
//
// The `caniemail` npm package finds the features and carries the data (no network). Where
// its linter falls short, this script fills in with the package's own parser and data:
// - it checks only the top-level rules of a <style>: the rules inside @media (dark mode, the
//   phone layout) and @supports are checked here too;
// - it knows no media features: `@media (prefers-color-scheme…)` is matched here against the
//   data's "@media (…)" features;
// - it finds no CSS function (its lookup table is inside out): calc(), var(), rgba(),
//   linear-gradient() and the like are found here;
// - it matches element names by substring (<tbody> counts as <body>) and counts `.a .b` as
//   chained classes: such matches are dropped;
// - it takes a client's latest test as the last version in string order, so for Apple Mail
//   on iOS "6.1" comes after "12.2"; here it is the last test the data lists, as
//   caniemail.com shows it. A feature that caniemail would therefore never report is listed
//   in `blind_spots` (none today).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { caniemail, parseCss } from 'caniemail';

// Gmail (web, iOS, Android), Apple Mail, Outlook (Windows, Outlook.com) and Yahoo (issue 15).
const CLIENTS = [
  'gmail.desktop-webmail',
  'gmail.ios',
  'gmail.android',
  'apple-mail.macos',
  'apple-mail.ios',
  'outlook.windows',
  'outlook.outlook-com',
  'yahoo.desktop-webmail',
  'yahoo.ios',
  'yahoo.android'
];
const SUPPORT = { y: 'full', a: 'partial', n: 'none', u: 'unknown' };
const SNIPPETS_SHOWN = 3;
const SNIPPET_LENGTH = 200;

const require = createRequire(import.meta.url);
// Keys such as "2019" or "16" (versions tested, note numbers) get a "#": JavaScript would
// list integer-like keys first, and the data's order is the order of the tests.
const DATA = JSON.parse(
  readFileSync(require.resolve('caniemail/caniemail.json'), 'utf8').replace(
    /(?<!\\)"(\d[^"\\]*)"(\s*:)/g,
    '"#$1"$2'
  )
);
const FEATURES = new Map(DATA.data.map((feature) => [feature.title, feature]));
// CSS function name → feature title ("CSS calc() function" → calc, "lch(), oklch()…" → each).
const FUNCTIONS = new Map([['var', 'CSS Variables (Custom Properties)']]);
for (const title of FEATURES.keys()) {
  if (title.startsWith(':')) continue;
  for (const match of title.matchAll(/([a-z-]+)\(\)/g)) FUNCTIONS.set(match[1], title);
}

function supportOf(feature, client, pick = (versions) => versions.at(-1)) {
  const [family, platform] = client.split('.');
  const stats = feature.stats?.[family]?.[platform];
  if (stats === undefined) return { support: 'unknown', version: null, notes: [] };
  const version = pick(Object.keys(stats));
  const value = stats[version];
  const notes = [...value.matchAll(/#\d+/g)]
    .map((match) => feature.notes_by_num?.[match[0]])
    .filter((note) => note);
  return { support: SUPPORT[value[0]] ?? 'unknown', version: version.slice(1), notes };
}

// Features that caniemail takes as supported by every named client (by its string order)
// though one's latest test says otherwise: it would never report them, even in use.
function blindSpots() {
  const stringOrder = (versions) => [...versions].sort().at(-1);
  const spots = [];
  for (const feature of FEATURES.values()) {
    const theirs = CLIENTS.map((client) => supportOf(feature, client, stringOrder).support);
    const lacking = CLIENTS.filter((client) => supportOf(feature, client).support !== 'full');
    if (theirs.every((support) => support === 'full') && lacking.length > 0) {
      spots.push({ feature: feature.title, clients: lacking });
    }
  }
  return spots;
}

const oneLine = (text) => {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > SNIPPET_LENGTH ? `${line.slice(0, SNIPPET_LENGTH - 1)}…` : line;
};

// The text at a caniemail position: a start tag (for a CSS feature, only its style
// attribute), a selector or a declaration.
function snippetAt(text, position, css) {
  if (!position) return undefined;
  const lineStarts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  const offset = (at) => lineStarts[at.line - 1] + at.column - 1;
  let snippet = text.slice(offset(position.start), offset(position.end) + 1);
  if (snippet.startsWith('<')) {
    snippet = snippet.slice(0, snippet.indexOf('>') + 1 || undefined);
    const style = /\sstyle\s*=\s*("[^"]*"|'[^']*')/i.exec(snippet);
    if (css && style) snippet = `${/^<[-\w]+/.exec(snippet)[0]} style=${style[1]}>`;
  } else if (snippet.includes('{')) {
    snippet = snippet.slice(0, snippet.indexOf('{'));
  }
  return oneLine(snippet);
}

// A match of caniemail's that its own snippet disproves (see the top of this file).
function misread(title, snippet) {
  if (!snippet) return false;
  const element = /^<(\w+)> element$/.exec(title);
  if (element) return !new RegExp(`^<${element[1]}[\\s/>]`, 'i').test(snippet);
  if (title === 'Chaining selectors') {
    return !snippet.split(/[\s>+~,]+/).some((compound) => (compound.match(/\.[-\w]/g) ?? []).length > 1);
  }
  return false;
}

class Findings {
  constructor() {
    this.byTitle = new Map();
  }

  note(title, snippet) {
    if (!FEATURES.has(title) || misread(title, snippet)) return;
    const snippets = this.byTitle.get(title) ?? new Set();
    if (snippet) snippets.add(snippet);
    this.byTitle.set(title, snippets);
  }

  // Every feature caniemail finds, whatever support it gives it: support is judged later.
  run(options, text) {
    const { issues } = caniemail({ clients: CLIENTS, ...options });
    for (const kind of [issues.errors, issues.warnings]) {
      for (const clientIssues of kind.values()) {
        for (const issue of clientIssues) {
          const css = FEATURES.get(issue.title)?.category === 'css';
          this.note(issue.title, snippetAt(text, issue.position, css));
        }
      }
    }
  }

  functions(css) {
    for (const match of css.matchAll(/(?<![-\w])([a-z][-a-z]*)\(/gi)) {
      const title = FUNCTIONS.get(match[1].toLowerCase());
      if (!title) continue;
      const start = Math.max(...['{', ';', '"', "'"].map((c) => css.lastIndexOf(c, match.index))) + 1;
      const ends = [';', '}', '"', "'"].map((c) => css.indexOf(c, match.index)).filter((i) => i >= 0);
      this.note(title, oneLine(css.slice(start, Math.min(css.length, ...ends))));
    }
  }
}

const declarationsCss = (declarations = []) =>
  declarations
    .filter((declaration) => declaration.type === 'declaration')
    .map((declaration) => `${declaration.property}:${declaration.value}`)
    .join(';');

// The data's "@media (…)" features whose media feature the query names.
function mediaFeatureTitles(query) {
  const named = new Set(
    [...query.matchAll(/\(\s*([-a-z]+)\s*[:)]/g)].map((match) => match[1].replace(/^(min|max)-/, ''))
  );
  return [...FEATURES.keys()].filter(
    (title) =>
      title.startsWith('@media (') &&
      [...title.matchAll(/\(([-a-z]+)\)/g)].some((match) => named.has(match[1].replace(/^-webkit-/, '')))
  );
}

// At-rules at any depth, and the plain rules inside them.
function checkAtRules(findings, rules) {
  for (const rule of rules) {
    if (rule.type === 'rule' || rule.type === 'comment') continue;
    const prelude = oneLine(`@${rule.type} ${rule[rule.type] ?? ''}`);
    findings.note(`@${rule.type}`, prelude);
    if (rule.type === 'media') {
      for (const title of mediaFeatureTitles(rule.media)) findings.note(title, prelude);
    }
    const inner = (rule.rules ?? [])
      .filter((child) => child.type === 'rule')
      .map((child) => `${child.selectors.join(',')}{${declarationsCss(child.declarations)}}`)
      .join('\n');
    if (inner) findings.run({ css: inner }, inner);
    checkAtRules(findings, rule.rules ?? []);
  }
}

// Each real <style> block's place in the HTML, and each style attribute; those inside
// comments (MSO conditionals, read by Outlook's Word engine alone) are not CSS to
// caniemail's parser either.
function styles(html) {
  const uncommented = html.replace(/<!--[\s\S]*?-->/g, (comment) => ' '.repeat(comment.length));
  const blocks = [...uncommented.matchAll(/(<style\b[^>]*>)([\s\S]*?)<\/style>/gi)].map((match) => ({
    start: match.index + match[1].length,
    text: match[2]
  }));
  const attributes = [...uncommented.matchAll(/<[^>]*?\sstyle\s*=\s*("[^"]*"|'[^']*')/gi)].map((m) => m[1]);
  return { blocks, attributes };
}

function check(html) {
  const findings = new Findings();
  const { blocks, attributes } = styles(html);
  // The HTML with each <style>'s text blanked in place: elements, attributes and inline
  // styles keep their line and column, and the CSS is checked block by block below.
  let blanked = html;
  for (const { start, text } of blocks) {
    blanked = blanked.slice(0, start) + text.replace(/[^\n]/g, ' ') + blanked.slice(start + text.length);
  }
  findings.run({ html: blanked }, html);
  for (const { text } of blocks) {
    if (!text.trim()) continue;
    findings.run({ css: text }, text);
    findings.functions(text);
    checkAtRules(findings, parseCss(text).stylesheet.rules);
  }
  for (const attribute of attributes) findings.functions(attribute);
  return report(findings);
}

// One entry per feature in use that a named client lacks, or has only in part or unknown.
function report(findings) {
  const features = [];
  for (const [title, snippets] of [...findings.byTitle].sort(([a], [b]) => a.localeCompare(b))) {
    const feature = FEATURES.get(title);
    const clients = {};
    for (const client of CLIENTS) {
      const support = supportOf(feature, client);
      if (support.support !== 'full') clients[client] = support;
    }
    if (Object.keys(clients).length === 0) continue;
    features.push({
      feature: title,
      url: feature.url,
      clients,
      snippet_count: snippets.size,
      snippets: [...snippets].slice(0, SNIPPETS_SHOWN)
    });
  }
  return {
    caniemail: require('caniemail/package.json').version,
    data_updated: DATA.last_update_date,
    clients: CLIENTS,
    features,
    blind_spots: blindSpots()
  };
}

if (process.argv.length !== 3) {
  process.stderr.write('usage: node tests/caniemail_check.mjs EMAIL.html\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(check(readFileSync(process.argv[2], 'utf8')), null, 2)}\n`);
