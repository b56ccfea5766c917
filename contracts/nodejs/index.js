// Hot Pocket's third example contract, written with the published HotPocket 0.6 contract
// library (hotpocket-nodejs-contract 0.7.4, unchanged). Run it with "stdinfmt": "hotpocket"
// (contracts/nodejs/README.md). What it does, per input (each input is a JSON object):
//
//   {"op": "add", "text": "..."}  keeps the text in state/notes.json and answers
//                                 {"op":"add","count":<notes kept>,"ledger":<seq>} and then, as a
//                                 second output, {"op":"added","text":"..."}
//   {"op": "npl"}                 every node sends its key over the node party line, waits for
//                                 every UNL member's, and answers {"op":"npl","heard":<n>,
//                                 "unl":<n>} and then {"op":"heard","members":[<keys, sorted>]}
//                                 — the same on every node
//   {"op": "config"}              answers {"op":"config","version":<v>,"unl":<n>,"roundtime":<ms>}
//                                 from ../patch.cfg (the library's getConfig)
//   {"op": "version", "version": "..."}
//                                 sets the contract's version in ../patch.cfg (the library's
//                                 updateConfig; agreed with the state) and answers
//                                 {"op":"version","version":"..."}
//   {"op": "roundtime", "roundtime": <ms>} sets the agreed roundtime (updateConfig) and answers
//                                 {"op":"roundtime","roundtime":<ms>}
//   {"op": "input_window", "offset": <n>} sets max_input_ledger_offset the same way and answers
//                                 {"op":"input_window","offset":<n>}
//   {"op": "user_input_bytes", "bytes": <n>} sets round_limits.user_input_bytes the same way and
//                                 answers {"op":"user_input_bytes","bytes":<n>}
//   {"op": "unl", "unl": ["ed<hex>", ...]}
//                                 sets the UNL in ../patch.cfg: once the network agrees on the
//                                 round, it hands over to those members. Answers
//                                 {"op":"unl","unl":<n>}
//   any other JSON                answers {"op":"error","error":"unknown op"}
//   text that is not JSON         is added as a note, as {"op":"add","text":<the text>} would
//
// A read request (a read-only run) answers {"op":"read","count":<notes kept>,"readonly":true}
// and changes nothing; whatever it writes to its copy of the state is thrown away.
//
// The contract is deterministic: its answers depend only on the inputs, the state and the
// UNL. The NPL wait ends when every member was heard, never at a time, so every node answers
// the same (a member that is down leaves the wait to the node's contract timeout).
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

const NOTES = "notes.json";

function loadNotes() {
    try {
        return JSON.parse(fs.readFileSync(NOTES, "utf8"));
    } catch {
        return [];
    }
}

// Changes one field of the contract's config (../patch.cfg) with the library's getConfig and
// updateConfig; the network agrees on it with the state (docs/contract-interface.md §4a).
async function updateConfig(ctx, edit) {
    const config = await ctx.getConfig();
    edit(config);
    await ctx.updateConfig(config);
}

async function heardFromEveryMember(ctx) {
    const members = ctx.unl.count();
    const heard = new Set();
    const everyone = new Promise((resolve) => {
        ctx.unl.onMessage((node, msg) => {
            if (node && msg.toString() === `hello from ${node.publicKey} at ${ctx.lclHash}`) {
                heard.add(node.publicKey);
            }
            if (heard.size === members) resolve();
        });
    });
    await ctx.unl.send(`hello from ${ctx.publicKey} at ${ctx.lclHash}`);
    await everyone;
    return [...heard].sort();
}

async function contract(ctx) {
    const notes = loadNotes();
    if (ctx.readonly) {
        for (const user of ctx.users.list()) {
            await user.send({ op: "read", count: notes.length, readonly: true });
        }
        // Thrown away with the read's copy of the state.
        fs.writeFileSync(NOTES, JSON.stringify([...notes, "written by a read"]));
        return;
    }
    const wantsNpl = [];
    for (const user of ctx.users.list()) {
        for (const input of user.inputs) {
            const raw = (await ctx.users.read(input)).toString();
            let req;
            try {
                req = JSON.parse(raw);
            } catch {
                req = { op: "add", text: raw };
            }
            if (req.op === "add" && typeof req.text === "string") {
                notes.push(req.text);
                await user.send({ op: "add", count: notes.length, ledger: ctx.lclSeqNo + 1 });
                await user.send({ op: "added", text: req.text });
            } else if (req.op === "npl") {
                wantsNpl.push(user);
            } else if (req.op === "config") {
                const config = await ctx.getConfig();
                await user.send({ op: "config", version: config.version, unl: config.unl.length, roundtime: config.consensus.roundtime, members: ctx.unl.list().map((n) => n.publicKey).sort() });
            } else if (req.op === "version" && typeof req.version === "string") {
                await updateConfig(ctx, (c) => (c.version = req.version));
                await user.send({ op: "version", version: req.version });
            } else if (req.op === "roundtime" && Number.isInteger(req.roundtime)) {
                await updateConfig(ctx, (c) => (c.consensus.roundtime = req.roundtime));
                await user.send({ op: "roundtime", roundtime: req.roundtime });
            } else if (req.op === "input_window" && Number.isInteger(req.offset)) {
                await updateConfig(ctx, (c) => (c.max_input_ledger_offset = req.offset));
                await user.send({ op: "input_window", offset: req.offset });
            } else if (req.op === "user_input_bytes" && Number.isInteger(req.bytes)) {
                await updateConfig(ctx, (c) => (c.round_limits.user_input_bytes = req.bytes));
                await user.send({ op: "user_input_bytes", bytes: req.bytes });
            } else if (req.op === "unl" && Array.isArray(req.unl)) {
                await updateConfig(ctx, (c) => (c.unl = req.unl));
                await user.send({ op: "unl", unl: req.unl.length });
            } else {
                await user.send({ op: "error", error: "unknown op" });
            }
        }
    }
    fs.writeFileSync(NOTES, JSON.stringify(notes));
    if (wantsNpl.length > 0) {
        const members = await heardFromEveryMember(ctx);
        for (const user of wantsNpl) {
            await user.send({ op: "npl", heard: members.length, unl: ctx.unl.count() });
            await user.send({ op: "heard", members });
        }
    }
}

// forceTerminate: once the contract function and its NPL callbacks are done, the library ends
// the process (SIGINT to itself). Without it, a contract that listens on the NPL never exits:
// Node keeps a read pending on the NPL socket, and the run would last until the node's
// contract_timeout_ms. The exit is recorded as signal 2, the same on every node.
new HotPocket.Contract().init(contract, HotPocket.clientProtocols.json, true);
