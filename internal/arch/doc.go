// Package arch holds, in its test, the import rules of DESIGN.md that keep
// Starling easy to change: stanza and stream import nothing of ours; no
// module imports another; only the module list names the modules. It has
// no code.
package arch
