# Shared shell helpers for the scripts in this folder; source it, do not run it.

# ensure_go puts Go on PATH, or says how to get it.
ensure_go() {
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "Go 1.26 or newer is needed: https://go.dev/doc/install (or your distribution's golang package)" >&2
    exit 1
  fi
}

# ensure_packages installs Debian packages whose command is missing.
# Arguments are command:package pairs, e.g. ffmpeg:ffmpeg xmllint:libxml2-utils.
ensure_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  apt_install "${missing[@]}"
}

# ensure_debs installs Debian packages that are not installed, for packages with no
# command to look for (e.g. mesa-vulkan-drivers). Arguments are package names.
ensure_debs() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  apt_install "${missing[@]}"
}

# apt_install installs the Debian packages named, if any, with apt-get.
apt_install() {
  [ $# -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: $*; install them with your package manager" >&2
    exit 1
  fi
  echo "== installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
