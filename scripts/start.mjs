#!/usr/bin/env node
// `npm start`: the product entry point. The Raft engine is built and proven by simulation; the
// node server and the local cluster it will start here are not built yet, so say so plainly.
console.log(`Conflux ${process.env.npm_package_version ?? ''}`.trim());
console.log('');
console.log('The Raft engine is ready; the node server and the local cluster are not built yet.');
console.log('What you can run today:');
console.log('  npm test                      the whole test suite (includes 1,000 simulated seeds)');
console.log('  npm run sim -- --seeds 10000  the seeded Raft simulation with faults');
console.log('  npm run sim -- --seed 42      replay one seed');
