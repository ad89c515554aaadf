// Hides passwords given on the command line from process lists (/proc/<pid>/cmdline, ps).
#pragma once

namespace backfill {

// Overwrites, in place, the password of every connection string in argv: the value of a
// `password=` key and the password of a postgres:// or postgresql:// URI become 'x's.
// Call after the flags were parsed (the parser keeps its own copies).
void ScrubPasswordsFromArgv(int argc, char** argv);

}  // namespace backfill
