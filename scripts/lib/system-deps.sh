# Sourced by scripts/serve and scripts/check: installs the Debian packages a
# build with the default features needs, only those that are missing.
#
#   ensure_system_packages [EXTRA_PACKAGE_CHECK...]
#
# Without arguments it covers the release build: cmake and libclang for
# llama.cpp (built from source by the llama-cpp-2 crate), libespeak-ng for
# speech, the General MIDI soundfont for music (FluidLite itself is built
# from the fluidlite-sys crate's bundled source). The test suite adds
# `python3-venv` (the SDK and schemathesis venvs).

# Prints the packages the default build needs that are not installed.
missing_build_packages() {
  command -v cmake >/dev/null || echo cmake
  # bindgen loads libclang.so or libclang-N.so (libclang-cpp is a different library).
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
    /usr/lib/*/libclang.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1 || echo libclang-dev
  # Speech: espeak-ng's library, headers and data (the espeak and piper features).
  [ -e /usr/include/espeak-ng/speak_lib.h ] || echo libespeak-ng-dev
  # Music: the soundfont maximin-engine-music renders with (its tests fail without it).
  [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || echo fluid-soundfont-gm
  # OpenH264's x86 assembly (maximin-video): without nasm it builds plain C,
  # 2.3x slower at encoding.
  command -v nasm >/dev/null || echo nasm
  # A C++ compiler for llama.cpp and the linker's C runtime.
  command -v c++ >/dev/null || echo g++
}

# Installs what missing_build_packages lists, plus any of "$@" (package
# names whose check the caller already failed).
ensure_system_packages() {
  local need=()
  local p
  for p in $(missing_build_packages) "$@"; do need+=("$p"); done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${need[*]}" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "error: need root (or sudo) to install: apt-get install ${need[*]}" >&2
      return 1
    }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}"
}
