#!/usr/bin/env bash
# `make test`'s display step: with no display, bring up what napari's canvas needs (Xvfb + Mesa, the
# Debian packages below) when this user may install them (root or password-less sudo, apt-get
# present, SYSTEM_DEPS not 0); print the command prefix that runs the tests under it (xvfb-run ...)
# or nothing. It never fails: without Xvfb the test suite leaves the viewer tests out and says why.
set -u
[ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ] && exit 0

need=()
command -v xvfb-run >/dev/null 2>&1 || need+=(xvfb xauth)
if command -v dpkg >/dev/null 2>&1; then
  for pkg in libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
             libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xkb1 \
             libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1 libgl1 libopengl0 libx11-xcb1 \
             libxcb-xfixes0 libxcb-shm0 libxcb-sync1 libxcb-glx0 libwayland-client0 libglib2.0-0; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
fi

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then sudo -n true >/dev/null 2>&1 && SUDO="sudo -n"; fi
  if [ "${SYSTEM_DEPS:-1}" = "0" ]; then
    echo "test_display: SYSTEM_DEPS=0, not installing ${need[*]}" >&2
  elif ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; }; then
    echo "test_display: no display and cannot install ${need[*]} (needs root and apt-get)" >&2
  else
    echo "test_display: installing system packages for the viewer tests: ${need[*]}" >&2
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"; } >&2 \
      || echo "test_display: apt-get failed; the viewer tests will be left out" >&2
  fi
fi

command -v xvfb-run >/dev/null 2>&1 && echo 'xvfb-run -a -s "-screen 0 1600x1000x24"'
exit 0
