# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/quickstart.sh: installs sinklab's Debian dependencies where
# they are missing.
step() { printf '\n==> %s\n' "$*"; }

SINKLAB_APT_PACKAGES=(
  cmake ninja-build g++ pkg-config git
  libyaml-cpp-dev libspdlog-dev libfmt-dev libhdf5-dev libopenmpi-dev openmpi-bin libopenblas-dev libopenblas0-openmp
  liblapacke-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev
  python3-numpy python3-h5py python3-matplotlib python3-torch python3-yaml ca-certificates
)

# With SINKLAB_TEST_SLURM=1 (CI sets it), also Slurm and munge, for the test that runs the Slurm scripts under a
# one-node cluster of its own (tests/slurm/); elsewhere that test is skipped.
SINKLAB_SLURM_TEST_PACKAGES=(slurmctld slurmd slurm-client munge)

install_deps() {
  local missing=() wanted=("${SINKLAB_APT_PACKAGES[@]}")
  [ "${SINKLAB_TEST_SLURM:-0}" = 1 ] && wanted+=("${SINKLAB_SLURM_TEST_PACKAGES[@]}")
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # node and npm (reference tokenizations, the GPT-2 vocabulary) may come from elsewhere than Debian.
  command -v npm >/dev/null || missing+=(nodejs npm)
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  step "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v apt-get >/dev/null; then
    echo "sinklab: missing packages ${missing[*]} and no apt-get here; install them by hand" >&2
    return 1
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}
