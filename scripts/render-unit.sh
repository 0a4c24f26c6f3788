#!/bin/sh
# Write the systemd unit for this checkout: systemd/fsbarge.service names /opt/fsbarge (the
# documented place); this writes a copy whose commands run the virtualenv where `make install`
# actually put fsbarge, so nobody has to edit paths by hand.
#
#   scripts/render-unit.sh CHECKOUT VENV TEMPLATE OUT
#
# A checkout under /home or /root gets ProtectHome=read-only (the template's ProtectHome=yes would
# hide it from the service). Paths systemd would need quoted or escaped are refused.
set -eu
checkout="$1"; venv="$2"; template="$3"; out="$4"
for path in "$checkout" "$venv"; do
  case "$path" in
    /*) ;;
    *) echo "fsbarge: $path: the unit needs an absolute path" >&2; exit 2 ;;
  esac
  case "$path" in
    *[!A-Za-z0-9/._+-]*)
      echo "fsbarge: cannot write a systemd unit for $path: use a path of letters, digits and / . _ + - (e.g. /opt/fsbarge)" >&2
      exit 2 ;;
  esac
done
protect=yes
case "$venv/" in
  /home/*|/root/*) protect=read-only ;;
esac
mkdir -p "$(dirname "$out")"
sed -e "s|/opt/fsbarge/\.venv|$venv|g" -e "s|/opt/fsbarge|$checkout|g" -e "s|^ProtectHome=yes\$|ProtectHome=$protect|" \
  "$template" > "$out.tmp"
mv "$out.tmp" "$out"
echo "systemd unit for this checkout: $out"
echo "  install it with: install -m 0644 $out /etc/systemd/system/fsbarge.service && systemctl daemon-reload"
if [ "$protect" = read-only ]; then
  echo "  (ProtectHome=read-only: the service user fsbarge must be able to read $venv)"
fi
