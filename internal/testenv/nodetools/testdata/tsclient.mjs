// tsclient.mjs lists an MCP server's catalog with the official TypeScript SDK
// client (@modelcontextprotocol/sdk) over streamable HTTP, the way an
// application built on the SDK does: Client.connect, then listTools,
// listPrompts, listResources and listResourceTemplates, each following
// nextCursor to the end. The SDK validates every result against the MCP
// schema; a result it rejects is reported as that method's error.
//
// Usage (nodetools.RunTSClient runs it):
//   MANDATE_TS_SDK=<dir of the @modelcontextprotocol/sdk package> \
//   MCP_BEARER_TOKEN=<token, optional> node tsclient.mjs URL METHOD...
// METHOD is tools/list, prompts/list, resources/list or resources/templates/list.
//
// Prints one JSON object on stdout:
//   {"serverCapabilities":{…},"results":{"METHOD":{"result":{"tools":[…]}} | {"error":"…"}}}
// and exits 0; exits 1 (message on stderr) when it cannot connect.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const sdk = process.env.MANDATE_TS_SDK;
if (!sdk) {
  console.error('tsclient: MANDATE_TS_SDK is not set');
  process.exit(2);
}
const load = (p) => import(pathToFileURL(join(sdk, 'dist/esm', p)).href);
const { Client } = await load('client/index.js');
const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');

const [url, ...methods] = process.argv.slice(2);
const headers = {};
if (process.env.MCP_BEARER_TOKEN) headers.Authorization = `Bearer ${process.env.MCP_BEARER_TOKEN}`;

// Each method: the client call and the result's list field.
const lists = {
  'tools/list': [(c, p) => c.listTools(p), 'tools'],
  'prompts/list': [(c, p) => c.listPrompts(p), 'prompts'],
  'resources/list': [(c, p) => c.listResources(p), 'resources'],
  'resources/templates/list': [(c, p) => c.listResourceTemplates(p), 'resourceTemplates'],
};

const client = new Client({ name: 'mandate-tsclient-test', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
try {
  await client.connect(transport);
} catch (e) {
  console.error(`tsclient: connect: ${e?.message ?? e}`);
  process.exit(1);
}

const results = {};
for (const m of methods) {
  const entry = lists[m];
  if (!entry) {
    results[m] = { error: `tsclient: unknown method ${m}` };
    continue;
  }
  const [call, field] = entry;
  try {
    const items = [];
    let cursor;
    for (let page = 0; page < 1000; page++) {
      const r = await call(client, cursor === undefined ? undefined : { cursor });
      items.push(...r[field]);
      cursor = r.nextCursor;
      if (!cursor) break;
    }
    results[m] = { result: { [field]: items } };
  } catch (e) {
    results[m] = { error: String(e?.message ?? e) };
  }
}
process.stdout.write(JSON.stringify({ serverCapabilities: client.getServerCapabilities() ?? null, results }) + '\n');
await client.close();
