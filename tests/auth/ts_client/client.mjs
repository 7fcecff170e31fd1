// The MCP TypeScript SDK's client over streamable HTTP: connect with the bearer token in MCP_TOKEN (if
// any), list the tools, make the calls named in MCP_CALLS (a JSON list of [name, arguments]) and print
// one JSON object with what happened. The token comes through the environment, never the command line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.argv[2]);
const token = process.env.MCP_TOKEN;
const calls = JSON.parse(process.env.MCP_CALLS || "[]");
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
const client = new Client({ name: "mcp-ledger-ts-test", version: "1.0.0" });
const report = { connected: false, tools: [], results: [], error: null, status: null };
try {
  await client.connect(transport);
  report.connected = true;
  report.tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
  for (const [name, args] of calls) {
    const result = await client.callTool({ name, arguments: args });
    report.results.push({
      name,
      isError: result.isError === true,
      text: (result.content || []).map((block) => block.text || "").join("\n"),
      spanId: result._meta ? result._meta["mcp-ledger/span_id"] : null,
    });
  }
} catch (error) {
  report.error = `${error.name}: ${error.message}`;
  report.status = error.code ?? null; // StreamableHTTPError: the HTTP status
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report) + "\n");
