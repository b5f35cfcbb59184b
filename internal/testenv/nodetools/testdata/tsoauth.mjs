// tsoauth.mjs signs in to an MCP server with the official TypeScript SDK
// client's OAuth support (@modelcontextprotocol/sdk: StreamableHTTPClientTransport
// with an authProvider implementing OAuthClientProvider), headless:
//
//   connect → 401 → the SDK discovers (protected resource metadata, RFC 8414),
//   registers (dynamic registration, or a client ID metadata document URL) and
//   calls redirectToAuthorization(url). This script then plays the browser:
//   it GETs the URL with login_hint appended, following redirects with a
//   cookie jar (Mandate → the IdP, which signs the hinted user in → Mandate's
//   callback → Mandate's consent page), posts the consent page's one form
//   with decision=allow, and reads the code from the redirect to the client's
//   redirect_uri (nothing listens there). transport.finishAuth(code) redeems
//   it; a new transport connects and lists tools. Then the access token is
//   replaced by a rejected one: the SDK refreshes (refresh_token grant) on
//   the 401 and lists tools again. Last, the first refresh token is
//   replayed at the token endpoint (it must be refused).
//
//   With "callTool" (per-user grants, issue 16): after the first tools/list a
//   client that declares capabilities.elicitation.url calls that tool; a
//   -32042 error's first URL elicitation is opened like a browser would
//   (cookie jar, login_hint at every /authorize, each page's one post form
//   posted with decision=allow) until a page without a form, which must be
//   2xx; then the call is retried ("connect"). Refresh and replay are
//   skipped ("skipRefresh").
//
// Usage (nodetools.RunTSOAuth runs it):
//   MANDATE_TS_SDK=<dir of @modelcontextprotocol/sdk> node tsoauth.mjs CONFIG_JSON
// CONFIG_JSON: {"url": MCP URL, "loginHint": "rita", "redirectUri": "http://127.0.0.1:P/callback",
//               "registration": "dcr" | "cimd", "clientMetadataUrl": URL (cimd),
//               "clientIdPreset": true (cimd with an http URL, see RunTSOAuth),
//               "callTool": name, "skipRefresh": true}
//
// Prints one JSON object on stdout (see nodetools.TSOAuthOutput) and exits
// 0, or prints {"error": "...", "steps": [...]} and exits 1. Tokens are
// never printed except accessToken (the final one, for the Inspector test).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';

const sdk = process.env.MANDATE_TS_SDK;
if (!sdk) {
  console.error('tsoauth: MANDATE_TS_SDK is not set');
  process.exit(2);
}
const load = (p) => import(pathToFileURL(join(sdk, 'dist/esm', p)).href);
const { Client } = await load('client/index.js');
const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');
const { UnauthorizedError } = await load('client/auth.js');

const cfg = JSON.parse(process.argv[2]);
const steps = [];
const step = (s) => steps.push(s);
const out = { steps, grants: [] };

function fail(msg) {
  console.log(JSON.stringify({ error: String(msg), steps }));
  process.exit(1);
}

// ---- a minimal browser: cookie jar per origin, manual redirects ----
const jar = new Map(); // origin -> Map(name -> value)
function storeCookies(url, res) {
  const origin = new URL(url).origin;
  const m = jar.get(origin) ?? new Map();
  for (const c of res.headers.getSetCookie?.() ?? []) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    if (i > 0) m.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
  }
  jar.set(origin, m);
}
function cookieHeader(url) {
  const m = jar.get(new URL(url).origin);
  if (!m || m.size === 0) return undefined;
  return [...m].map(([k, v]) => `${k}=${v}`).join('; ');
}
async function browse(url, init = {}) {
  const headers = { ...(init.headers ?? {}), 'User-Agent': 'mandate-e2e-headless' };
  const cookie = cookieHeader(url);
  if (cookie) headers.Cookie = cookie;
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  storeCookies(url, res);
  return res;
}
const decode = (s) =>
  s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos|#39);/gi, (_, e) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos' || l === '#39') return "'";
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    return String.fromCodePoint(parseInt(l.slice(1), 10));
  });
const attr = (tag, name) => {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
  return m ? decode(m[2] ?? m[3] ?? m[4] ?? '') : undefined;
};

// consentForm returns the one post form of an HTML page: its action and
// fields (hidden and other inputs with a value; buttons are left out).
function consentForm(html, pageURL) {
  const forms = [...html.matchAll(/<form\b[^>]*>/gi)].filter((m) => (attr(m[0], 'method') ?? '').toLowerCase() === 'post');
  if (forms.length !== 1) throw new Error(`page ${pageURL} has ${forms.length} post forms, want 1: ${html.slice(0, 400)}`);
  const start = forms[0].index;
  const end = html.indexOf('</form>', start);
  const body = html.slice(start, end < 0 ? undefined : end);
  const fields = new URLSearchParams();
  for (const m of body.matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(m[0], 'name');
    const type = (attr(m[0], 'type') ?? 'text').toLowerCase();
    if (!name || type === 'submit' || type === 'button' || type === 'image') continue;
    if ((type === 'checkbox' || type === 'radio') && !/\schecked\b/i.test(m[0])) continue;
    fields.append(name, attr(m[0], 'value') ?? '');
  }
  const action = new URL(attr(forms[0][0], 'action') ?? pageURL, pageURL).href;
  return { action, fields };
}

// signIn plays the browser from Mandate's authorization URL to the code.
async function signIn(authURL, expectedState) {
  const u = new URL(authURL);
  if (cfg.loginHint) u.searchParams.set('login_hint', cfg.loginHint);
  let url = u.href;
  let res = await browse(url);
  for (let hop = 0; hop < 20; hop++) {
    if (res.status >= 300 && res.status < 400) {
      const loc = new URL(res.headers.get('location'), url).href;
      step(`redirect ${new URL(url).origin}${new URL(url).pathname} -> ${new URL(loc).origin}${new URL(loc).pathname}`);
      if (loc.startsWith(cfg.redirectUri)) {
        const cb = new URL(loc);
        if (cb.searchParams.get('error')) throw new Error(`authorization error: ${cb.searchParams.get('error')}: ${cb.searchParams.get('error_description')}`);
        if (cb.searchParams.get('state') !== expectedState) throw new Error(`state came back as ${cb.searchParams.get('state')}, sent ${expectedState}`);
        out.iss = cb.searchParams.get('iss') ?? undefined;
        return cb.searchParams.get('code');
      }
      url = loc;
      res = await browse(url);
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status} at ${url}: ${html.slice(0, 300)}`);
    if (new URL(url).origin !== new URL(cfg.url).origin) throw new Error(`a page at ${url} (the IdP's picker?) instead of a redirect: ${html.slice(0, 300)}`);
    const { action, fields } = consentForm(html, url);
    if (/<script\b/i.test(html)) out.consentHasScript = true;
    out.consentPage = { url: new URL(url).pathname, action: new URL(action).pathname, fields: [...fields.keys()] };
    step(`consent page ${new URL(url).pathname}: posting ${[...fields.keys()].join(',')} + decision=allow`);
    fields.set('decision', 'allow');
    url = action;
    res = await browse(action, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: new URL(action).origin, Referer: url },
      body: fields.toString(),
    });
  }
  throw new Error('too many redirects');
}

// openLink plays the browser on a link a server asked the user to open (a
// URL elicitation): login_hint at every /authorize, the one post form of
// each page posted with decision=allow, until a page without a form.
async function openLink(link) {
  const pages = { steps: [], forms: 0 };
  let url = link;
  let init = {};
  for (let hop = 0; hop < 30; hop++) {
    const u = new URL(url);
    if ((init.method ?? 'GET') === 'GET' && u.pathname.endsWith('/authorize') && cfg.loginHint) {
      u.searchParams.set('login_hint', cfg.loginHint);
      url = u.href;
    }
    pages.steps.push(`${init.method ?? 'GET'} ${u.origin}${u.pathname}`);
    const res = await browse(url, init);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).href;
      init = {};
      continue;
    }
    const html = await res.text();
    const hasForm = [...html.matchAll(/<form\b[^>]*>/gi)].some((m) => (attr(m[0], 'method') ?? '').toLowerCase() === 'post');
    if (res.status < 200 || res.status > 299 || !hasForm) {
      pages.final = {
        url: `${u.origin}${u.pathname}`, status: res.status, hasForm, hasScript: /<script\b/i.test(html),
        text: html.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 500),
      };
      return pages;
    }
    const { action, fields } = consentForm(html, url);
    fields.set('decision', 'allow');
    pages.forms++;
    init = {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: new URL(action).origin, Referer: url },
      body: fields.toString(),
    };
    url = action;
  }
  throw new Error(`too many steps opening the link: ${pages.steps.join(' -> ')}`);
}

const textOf = (r) => (r?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');

// connectScene: call cfg.callTool as a client with URL elicitation; on
// -32042 open the link; retry.
async function connectScene() {
  const client = new Client({ name: 'mandate-tsoauth-test', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
  const transport = new StreamableHTTPClientTransport(new URL(cfg.url), { authProvider: provider, fetch: recordingFetch });
  await client.connect(transport);
  try {
    const r = await client.callTool({ name: cfg.callTool, arguments: {} });
    out.firstCall = { isError: !!r.isError, text: textOf(r) };
    step(`${cfg.callTool}: answered without an elicitation (isError ${!!r.isError})`);
    await client.close();
    return;
  } catch (e) {
    const el = e?.data?.elicitations?.[0] ?? e?.elicitations?.[0];
    out.elicitation = { code: e?.code, url: el?.url, mode: el?.mode, message: el?.message, elicitationId: el?.elicitationId };
    step(`${cfg.callTool}: error ${e?.code} ${el?.mode ?? ''} elicitation`);
    if (e?.code !== -32042 || !el?.url) {
      out.elicitation.error = String(e?.message ?? e);
      await client.close();
      return;
    }
  }
  out.connect = await openLink(out.elicitation.url);
  step(`link opened: ${out.connect.steps.length} requests, ${out.connect.forms} forms posted, final HTTP ${out.connect.final?.status}`);
  const r = await client.callTool({ name: cfg.callTool, arguments: {} });
  out.retry = { isError: !!r.isError, text: textOf(r) };
  step(`${cfg.callTool} retried: isError ${!!r.isError}`);
  await client.close();
}

// ---- the OAuthClientProvider ----
const state = randomBytes(16).toString('base64url');
let pendingCode;
const provider = {
  get redirectUrl() {
    return cfg.redirectUri;
  },
  get clientMetadata() {
    return {
      client_name: 'Mandate e2e (TypeScript SDK)',
      redirect_uris: [cfg.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientMetadataUrl: cfg.registration === 'cimd' && !cfg.clientIdPreset ? cfg.clientMetadataUrl : undefined,
  state: () => state,
  _client: undefined,
  clientInformation() {
    return this._client;
  },
  saveClientInformation(info) {
    this._client = info;
    out.clientId = info.client_id;
    step(`client registered: ${info.client_id === cfg.clientMetadataUrl ? 'metadata document URL' : 'dynamic registration'}`);
  },
  _tokens: undefined,
  tokens() {
    return this._tokens;
  },
  saveTokens(t) {
    this._tokens = t;
    step(`tokens saved (refresh token: ${t.refresh_token ? 'yes' : 'no'}, scope: ${t.scope ?? ''})`);
  },
  _verifier: undefined,
  saveCodeVerifier(v) {
    this._verifier = v;
  },
  codeVerifier() {
    return this._verifier;
  },
  async redirectToAuthorization(authURL) {
    const u = new URL(authURL);
    out.authorize = {
      endpoint: u.origin + u.pathname,
      resource: u.searchParams.get('resource'),
      scope: u.searchParams.get('scope'),
      codeChallengeMethod: u.searchParams.get('code_challenge_method'),
      clientId: u.searchParams.get('client_id'),
    };
    step(`redirectToAuthorization ${u.origin}${u.pathname}`);
    pendingCode = await signIn(authURL, state);
  },
};
if (cfg.registration === 'cimd' && cfg.clientIdPreset) {
  // The SDK uses a metadata document URL as client_id only when it is https
  // (isHttpsUrl in client/auth.js). For an http://127.0.0.1 document the
  // client is given that URL as its client_id up front — what the SDK's
  // CIMD branch stores, too: { client_id: clientMetadataUrl, issuer }.
  provider._client = { client_id: cfg.clientMetadataUrl, issuer: cfg.issuer };
  out.clientId = cfg.clientMetadataUrl;
  step('client_id preset to the metadata document URL');
}

// Record the grants the SDK sends to the token endpoint.
const recordingFetch = async (input, init) => {
  const body = init?.body;
  if (body && init?.method === 'POST') {
    const p = new URLSearchParams(typeof body === 'string' ? body : body instanceof URLSearchParams ? body.toString() : '');
    if (p.get('grant_type')) {
      out.grants.push(p.get('grant_type'));
    }
  }
  return fetch(input, init);
};

async function listTools() {
  const client = new Client({ name: 'mandate-tsoauth-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(cfg.url), { authProvider: provider, fetch: recordingFetch });
  await client.connect(transport);
  const names = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const r = await client.listTools(cursor ? { cursor } : undefined);
    names.push(...r.tools.map((t) => t.name));
    cursor = r.nextCursor;
    if (!cursor) break;
  }
  await client.close();
  return names;
}

try {
  // 1. Unauthenticated connect: discovery, registration, authorization.
  const transport = new StreamableHTTPClientTransport(new URL(cfg.url), { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'mandate-tsoauth-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    fail('connected without signing in');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    step('connect: UnauthorizedError (sign-in done by redirectToAuthorization)');
  }
  if (!pendingCode) fail('no authorization code');
  // 2. Token.
  await transport.finishAuth(pendingCode);
  step('finishAuth: code redeemed');
  const first = provider.tokens();
  if (!first?.access_token) fail('no access token after finishAuth');
  out.refreshTokenIssued = !!first.refresh_token;
  out.tokenType = first.token_type;
  out.expiresIn = first.expires_in;
  // 3. tools/list with the new token.
  out.tools = await listTools();
  step(`tools/list: ${out.tools.length} tools`);
  if (cfg.callTool) await connectScene();
  if (cfg.skipRefresh) {
    console.log(JSON.stringify(out));
    process.exit(0);
  }
  // 4. Refresh: the server rejects the access token; the SDK refreshes on the 401.
  const oldRefresh = first.refresh_token;
  provider._tokens = { ...first, access_token: 'expired.' + first.access_token.split('.').slice(1).join('.') + 'x' };
  out.toolsAfterRefresh = await listTools();
  const second = provider.tokens();
  out.refreshed = second.access_token !== first.access_token && !!second.access_token && !second.access_token.startsWith('expired.');
  out.refreshTokenRotated = !!second.refresh_token && second.refresh_token !== oldRefresh;
  step(`after refresh: tools/list ${out.toolsAfterRefresh.length} tools`);
  out.accessToken = second.access_token;
  // 5. Replaying the first refresh token must be refused.
  if (cfg.replay && oldRefresh) {
    const meta = await (await fetch(new URL('/.well-known/oauth-authorization-server', cfg.url))).json();
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: oldRefresh, client_id: provider._client.client_id });
    const r = await fetch(meta.token_endpoint, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    const b = await r.json().catch(() => ({}));
    out.replay = { status: r.status, error: b.error };
    out.accessToken = undefined; // the family is revoked
  }
  console.log(JSON.stringify(out));
} catch (e) {
  fail(e?.stack ?? e);
}
