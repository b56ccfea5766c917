// Drives Hot Pocket nodes with the published HotPocket 0.6 client, unchanged, for the Rust
// tests in tests/tests/it/hotpocket.rs. Usage: node client.js '<spec JSON>'
//   spec: { servers: [url], trusted: [ed-hex] | null, protocol: "json" | "bson",
//           required: n, ops: [{ op: "status" | "lcl" }
//                                | { op: "input", input, nonce?, max_ledger?, is_offset? }
//                                | { op: "outputs", count, timeout_ms }
//                                | { op: "ledger", seq | "last_input", inputs, outputs }
//                                | { op: "subscribe_ledgers" } | { op: "ledger_events", count, timeout_ms }
//                                | { op: "read", request }
//                                | { op: "subscribe_health" } | { op: "health_events", count, timeout_ms }
//                                | { op: "unl_events", count, timeout_ms }] }
// unl_change events are collected from the start (the client subscribes when it trusts keys).
// Outputs are collected from the start: the client emits only those whose proof it verified
// (against trustedServerKeys, when given).
// Prints one line per step, "RESULT <json>", after the client's own log lines; binary values
// are shown as hex. Exits 0 when every step ran (the tests judge the results).
const HotPocket = require("hotpocket-js-client");

const hex = (v) => {
    if (v === null || v === undefined) return v;
    if (typeof v === "string") return v;
    if (v instanceof Uint8Array || Buffer.isBuffer(v)) return Buffer.from(v).toString("hex");
    if (v.buffer) return Buffer.from(v.buffer).toString("hex");
    return v;
};
const results = [];
const result = (obj) => {
    results.push(obj);
    console.log("RESULT " + JSON.stringify(obj));
};

async function main() {
    const spec = JSON.parse(process.argv[2]);
    const keys = await HotPocket.generateKeys();
    const client = await HotPocket.createClient(spec.servers, keys, {
        trustedServerKeys: spec.trusted,
        protocol: spec.protocol === "bson" ? HotPocket.protocols.bson : HotPocket.protocols.json,
        requiredConnectionCount: spec.required || 1,
        connectionTimeoutMs: spec.timeout_ms || 5000,
        contractVersion: spec.contract_version || null,
    });
    const outputs = [];
    client.on(HotPocket.events.contractOutput, (r) => {
        for (const o of r.outputs) outputs.push({ ledgerSeqNo: r.ledgerSeqNo, ledgerHash: hex(r.ledgerHash), output: Buffer.from(typeof o === "string" ? o : new Uint8Array(o)).toString() });
    });
    const ledgerEvents = [];
    client.on(HotPocket.events.ledgerEvent, (ev) => {
        if (ev.event === "ledger_created") ledgerEvents.push({ seqNo: Number(ev.ledger.seqNo), hash: hex(ev.ledger.hash), prevHash: hex(ev.ledger.prevHash), configHash: hex(ev.ledger.configHash) });
    });
    const healthEvents = [];
    client.on(HotPocket.events.healthEvent, (ev) => healthEvents.push(ev));
    const unlEvents = [];
    client.on(HotPocket.events.unlChange, (unl) => unlEvents.push(unl.map(hex)));
    const connected = await client.connect();
    result({ op: "connect", connected: !!connected, user: hex(keys.publicKey) });
    if (!connected) return;
    for (const step of spec.ops || []) {
        if (step.op === "status") {
            const all = await client.getStatus();
            const list = Array.isArray(all) ? all : [all];
            result({
                op: "status",
                results: list.map((s) => s && ({ ...s, ledgerHash: hex(s.ledgerHash), currentUnl: s.currentUnl.map(hex) })),
            });
        } else if (step.op === "lcl") {
            const all = await client.getLcl();
            const list = Array.isArray(all) ? all : [all];
            result({ op: "lcl", results: list.map((l) => l && { ledgerSeqNo: l.ledgerSeqNo, ledgerHash: hex(l.ledgerHash) }) });
        } else if (step.op === "input") {
            try {
                const isOffset = step.is_offset === undefined ? true : step.is_offset;
                const submitted = await client.submitContractInput(step.input, step.nonce || null, step.max_ledger || null, isOffset);
                const status = await submitted.submissionStatus;
                result({ op: "input", hash: hex(submitted.hash), ...status, ledgerHash: hex(status.ledgerHash) });
            } catch (e) {
                result({ op: "input", error: String(e) });
            }
        } else if (step.op === "ledger") {
            const last = [...results].reverse().find((r) => r.op === "input" && r.ledgerSeqNo);
            const seq = step.seq === "last_input" ? (last ? last.ledgerSeqNo : 0) : step.seq;
            const l = await client.getLedgerBySeqNo(seq, !!step.inputs, !!step.outputs);
            const text = (v) => Buffer.from(typeof v === "string" ? v : new Uint8Array(v)).toString();
            result({
                op: "ledger",
                seq,
                ledger: l && {
                    seqNo: Number(l.seqNo),
                    hash: hex(l.hash),
                    prevHash: hex(l.prevHash),
                    inputs: (l.inputs || []).map((i) => ({ pubkey: hex(i.pubkey), blob: text(i.blob) })),
                    outputs: (l.outputs || []).map((o) => ({ pubkey: hex(o.pubkey), blobs: o.blobs.map(text) })),
                },
            });
        } else if (step.op === "read") {
            const all = await client.submitContractReadRequest(step.request);
            const list = Array.isArray(all) ? all : [all];
            const text = (v) => (v === null || v === undefined ? null : Buffer.from(typeof v === "string" ? v : new Uint8Array(v)).toString());
            result({ op: "read", replies: list.map(text) });
        } else if (step.op === "subscribe_health") {
            await client.subscribe(HotPocket.notificationChannels.healthEvent);
            result({ op: "subscribe_health" });
        } else if (step.op === "health_events") {
            const deadline = Date.now() + (step.timeout_ms || 10000);
            while (healthEvents.length < step.count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
            result({ op: "health_events", events: healthEvents.slice() });
        } else if (step.op === "subscribe_ledgers") {
            await client.subscribe(HotPocket.notificationChannels.ledgerEvent);
            result({ op: "subscribe_ledgers" });
        } else if (step.op === "ledger_events") {
            const deadline = Date.now() + (step.timeout_ms || 10000);
            while (ledgerEvents.length < step.count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
            result({ op: "ledger_events", events: ledgerEvents.slice() });
        } else if (step.op === "unl_events") {
            const deadline = Date.now() + (step.timeout_ms || 10000);
            while (unlEvents.length < step.count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
            result({ op: "unl_events", events: unlEvents.slice() });
        } else if (step.op === "outputs") {
            const deadline = Date.now() + (step.timeout_ms || 10000);
            while (outputs.length < step.count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
            result({ op: "outputs", outputs: outputs.slice() });
        } else {
            result({ op: step.op, error: "unknown op" });
        }
    }
    await client.close();
}

main().then(
    () => process.exit(0),
    (e) => {
        result({ op: "error", error: String(e) });
        process.exit(1);
    }
);
