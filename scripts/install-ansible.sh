#!/usr/bin/env bash
# Install what the Ansible end-to-end test (backend/e2e/ansible_test.go) needs,
# from Debian packages: ansible (Debian 12 ships Ansible 7.7.0, which bundles
# Pure's purestorage.flasharray 1.19.1 and purestorage.flashblade 1.11.0
# collections and community.hashi_vault 4.2.1) and python3-hvac, the Vault
# client community.hashi_vault's lookups and modules need. Pure's Python SDK
# (pypureclient), which the collections' modules import, is the arrays SDK
# that scripts/install-sdk-deps.sh --arrays unpacks; the test puts it on the
# modules' PYTHONPATH.
#
#   scripts/install-ansible.sh          check, install what is missing; print ansible-playbook's path
#   scripts/install-ansible.sh --check  only check; exit 1 and say what is missing
#
# Idempotent. Installing needs root (CI on Debian runs as root); without it
# the script prints the apt-get command to run. The collections' modules run
# under Debian's /usr/bin/python3 ($PURE1_PYTHON), where python3-hvac lands.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY="${PURE1_PYTHON:-/usr/bin/python3}"
CHECK_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    *) die "unknown argument $arg; use --check" ;;
  esac
done

# missing_pkgs: the Debian packages of what is not there yet.
missing_pkgs() {
  local out=()
  command -v ansible-playbook >/dev/null 2>&1 && command -v ansible-galaxy >/dev/null 2>&1 || out+=(ansible)
  "$PY" -c 'import hvac' >/dev/null 2>&1 || out+=(python3-hvac)
  echo "${out[*]:-}"
}

missing="$(missing_pkgs)"
if [[ -n "$missing" ]]; then
  if [[ "$CHECK_ONLY" == 1 ]]; then
    die "the Ansible test needs: $missing; run: apt-get update && apt-get install -y $missing"
  fi
  if [[ "$(id -u)" != 0 ]]; then
    die "the Ansible test needs: $missing; as root run: apt-get update && apt-get install -y --no-install-recommends $missing"
  fi
  need apt-get flock
  # Tests that need Ansible run in parallel: one installs, the others wait
  # and then find it there. apt itself waits for a dpkg lock another
  # installer holds (scripts/install-sdk-deps.sh, say).
  exec 9>"${TMPDIR:-/tmp}/pure1-install-ansible.lock"
  flock -w 900 9 || die "another scripts/install-ansible.sh has held its lock for 15 minutes"
  missing="$(missing_pkgs)"
fi
if [[ -n "$missing" ]]; then
  step "Installing from Debian: $missing" >&2
  # shellcheck disable=SC2086 # one word per package
  { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing; } >&2 ||
    die "apt-get could not install $missing; check the Debian mirror is reachable"
  missing="$(missing_pkgs)"
  [[ -z "$missing" ]] || die "installed, but still missing: $missing (is $PY Debian's python3?)"
fi

# The collections the test runs: bundled by Debian's ansible package, not
# fetched from Galaxy (which this machine cannot reach).
collections="$(ansible-galaxy collection list 2>/dev/null)"
for c in purestorage.flasharray purestorage.flashblade community.hashi_vault; do
  grep -q "^$c " <<<"$collections" ||
    die "Ansible has no collection $c: Debian's ansible package (7.x) bundles it; reinstall it with apt-get install --reinstall ansible"
done

command -v ansible-playbook
