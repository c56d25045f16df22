#!/bin/sh
# Adds RadLens to this user's application menu (double-click launch) from wherever this folder was unpacked.
# Run once after unpacking: ./install-desktop-entry.sh   (undo: rm the two files it names)
set -e
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"
mkdir -p "$apps" "$icons"
cp "$here/_internal/resources/radlens.png" "$icons/radlens.png"
sed "s|^Exec=RadLens|Exec=\"$here/RadLens\"|" "$here/_internal/radlens.desktop" > "$apps/radlens.desktop"
echo "Installed $apps/radlens.desktop and $icons/radlens.png"
