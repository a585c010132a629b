// Compiles tests/evm/contracts/*.sol with the pinned solc (npm; v3-core's own 0.7.6) into node_modules/.gpubt/.
// Run by the Makefile's node_modules stamp target; tests/evm/ runs it too when the output is missing.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = path.resolve(__dirname, "..", "..");
const contractsDir = path.join(__dirname, "contracts");
const names = fs.readdirSync(contractsDir).filter((f) => f.endsWith(".sol")).sort();
const sources = {};
for (const f of names) sources[f] = { content: fs.readFileSync(path.join(contractsDir, f), "utf8") };

function findImports(p) {
  const file = path.join(root, "node_modules", p);
  return fs.existsSync(file) ? { contents: fs.readFileSync(file, "utf8") } : { error: `not found: ${p}` };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 800 },
    evmVersion: "istanbul",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.methodIdentifiers"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const outDir = path.join(root, "node_modules", ".gpubt");
fs.mkdirSync(outDir, { recursive: true });
for (const f of names) {
  const contractName = path.basename(f, ".sol");
  const c = output.contracts[f][contractName];
  const artifact = { contractName, compiler: solc.version(), abi: c.abi, bytecode: "0x" + c.evm.bytecode.object,
                     methodIdentifiers: c.evm.methodIdentifiers };
  fs.writeFileSync(path.join(outDir, contractName + ".json"), JSON.stringify(artifact));
  console.log(`compiled ${contractName} (solc ${solc.version()}) -> node_modules/.gpubt/${contractName}.json`);
}
