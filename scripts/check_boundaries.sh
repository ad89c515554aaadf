#!/usr/bin/env bash
# Keeps the architecture honest (STYLE.md): libpq only in common/, gRPC only in the wire
# adapters, no file over 800 lines. Prints every violation; exits non-zero if there is one.
set -u
cd "$(dirname "$0")/.."
status=0
fail() { echo "boundary: $*"; status=1; }

while IFS= read -r f; do
  case "$f" in common/*) ;; *) fail "$f includes libpq (only common/ may)";; esac
done < <(grep -lE '#include <(libpq-fe|pqxx/)' --include='*.cc' --include='*.h' -r common coordinator worker ctl proto || true)

# gRPC is allowed only in the service/server and client adapters and proto/.
allowed_grpc='^(proto/|coordinator/server\.cc|worker/grpc_coordinator_client\.cc|worker/source_side_(server|session)\.cc|ctl/control_client\.cc)'
while IFS= read -r f; do
  [[ "$f" =~ $allowed_grpc ]] || fail "$f includes gRPC (only wire adapters may)"
done < <(grep -lE '#include [<"](grpcpp/|grpc/|backfill\.grpc\.pb\.h)' --include='*.cc' --include='*.h' -r common coordinator worker ctl proto || true)

while IFS= read -r f; do
  n=$(wc -l < "$f")
  [ "$n" -le 800 ] || fail "$f has $n lines (limit 800)"
done < <(find common coordinator worker ctl proto tests -name '*.cc' -o -name '*.h' | sort)

exit $status
