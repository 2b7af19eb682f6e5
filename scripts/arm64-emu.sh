#!/bin/sh
# An emulated aarch64 (Raspberry-Pi-like) Python 3.11 on an x86-64 Debian 12 host, for checking
# that Pi bundles install and compute the same on ARM.
#
#   scripts/arm64-emu.sh DEST REQUIREMENTS_TXT     (e.g. a bundle's requirements.txt)
#   -> prints the interpreter for exactly those requirements: DEST/envs/<hash>/python-aarch64
#   QEMU_CPU=cortex-a72 DEST/envs/<hash>/python-aarch64 -m runtime verify   (cortex-a76: a Pi 5)
#
# How: qemu-user-static runs aarch64 binaries; Debian's arm64 python3.11 packages are unpacked into
# DEST/sysroot (no chroot, no binfmt); the requirements' aarch64 wheels go into DEST/site through
# pip's --platform options, so what the bundle's requirements.txt pins is exactly what gets
# installed (if it does not install for aarch64, the target file is wrong). onnxruntime reads
# /proc/cpuinfo while loading and crashes on the host's x86 text under qemu, so the wrapper
# bind-mounts a Raspberry Pi cpuinfo over it in a private mount namespace (unshare -m).
# Emulated timings say nothing about a real device's speed: never report them as device timings.
# Needs root. The sysroot is shared; each distinct requirements file gets its own site.
set -eu
DEST=${1:?usage: arm64-emu.sh DEST REQUIREMENTS_TXT}
REQS=${2:?usage: arm64-emu.sh DEST REQUIREMENTS_TXT}
mkdir -p "$DEST/debs" "$DEST/sysroot" "$DEST/wheels"
DEST=$(cd "$DEST" && pwd)
if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
if [ ! -x "$DEST/sysroot/usr/bin/python3.11" ]; then
  [ -n "$(ls /var/lib/apt/lists/*arm64* 2>/dev/null)" ] || apt-get update -qq
  DEBS=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
          --no-replaces --no-enhances python3.11:arm64 libstdc++6:arm64 \
        | grep -E '^[a-z0-9].*:arm64$' | grep -vE '^(dpkg|install-info|tar|perl.*):' | sort -u)
  ( cd "$DEST/debs" && apt-get download $DEBS >/dev/null 2>&1 )
  for d in "$DEST"/debs/*.deb; do dpkg -x "$d" "$DEST/sysroot"; done
fi
PLAT=""
for v in 2014 2_17 2_24 2_27 2_28 2_31 2_34 2_35 2_36; do
  case $v in
    2014) PLAT="$PLAT --platform manylinux2014_aarch64" ;;
    *) PLAT="$PLAT --platform manylinux_${v}_aarch64" ;;
  esac
done
ENV="$DEST/envs/$(sha256sum "$REQS" | cut -c1-16)"
if [ ! -f "$ENV/requirements.txt" ]; then
  rm -rf "$ENV"
  mkdir -p "$ENV"
  python3 -m pip download -q --only-binary=:all: $PLAT --python-version 3.11 --implementation cp \
    -d "$DEST/wheels" -r "$REQS"
  python3 -m pip install -q --no-index --find-links "$DEST/wheels" --target "$ENV/site" --upgrade \
    --only-binary=:all: $PLAT --python-version 3.11 --implementation cp -r "$REQS"
  cp "$REQS" "$ENV/requirements.txt"
fi
: > "$DEST/cpuinfo"
for i in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' $i >> "$DEST/cpuinfo"
done
printf 'Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n' >> "$DEST/cpuinfo"
cat > "$ENV/python-aarch64" <<EOW
#!/bin/sh
export PYTHONPATH="$ENV/site\${PYTHONPATH:+:\$PYTHONPATH}"
export QEMU_CPU="\${QEMU_CPU:-cortex-a72}"
export EDGEPACK_EMULATED=1
exec unshare -m sh -c 'mount --bind "\$0" /proc/cpuinfo && s=\$1 && shift && exec qemu-aarch64-static -L "\$s" "\$s/usr/bin/python3.11" "\$@"' "$DEST/cpuinfo" "$DEST/sysroot" "\$@"
EOW
chmod +x "$ENV/python-aarch64"
"$ENV/python-aarch64" -c 'import platform, sys; print(platform.machine(), sys.version.split()[0])' >&2
echo "$ENV/python-aarch64"
