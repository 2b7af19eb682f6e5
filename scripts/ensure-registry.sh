#!/usr/bin/env bash
# Make sure Debian's docker-registry (CNCF distribution) is there for the OCI tests
# (tests/runtime/oci/). Idempotent and quiet; it never fails the caller (`make test` runs it
# before pytest): when it cannot install, it says why, and the tests decide (they fail under
# CI=true, and are skipped elsewhere). The package's own service is not started: the tests run
# their own registry on a free port.
set -u

if command -v docker-registry >/dev/null 2>&1 || command -v registry >/dev/null 2>&1; then
    echo "ensure-registry: already installed: $(command -v docker-registry || command -v registry)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-registry: not root, cannot apt-get install docker-registry; install it (or CNCF distribution's 'registry') yourself" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-registry: no apt-get here; install CNCF distribution's 'registry' binary yourself" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq docker-registry >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq docker-registry >/dev/null 2>&1 || {
        echo "ensure-registry: apt-get install docker-registry failed" >&2
        exit 0
    }
fi
echo "ensure-registry: installed $(command -v docker-registry)"
