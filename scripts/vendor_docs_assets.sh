#!/usr/bin/env bash
# Refresh the Swagger UI and ReDoc files that the app serves itself (app/web/vendor/), from
# their npm packages, with their licences. Run by hand when moving to a new version:
#   bash scripts/vendor_docs_assets.sh [SWAGGER_UI_VERSION] [REDOC_VERSION]
# ReDoc stays on major 2: FastAPI's ReDoc page is written for its redoc.standalone.js.
set -euo pipefail
cd "$(dirname "$0")/.."
SWAGGER_UI=${1:-5.35.0}
REDOC=${2:-2.5.4}
VENDOR=app/web/vendor
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI" "redoc@$REDOC" >/dev/null)
mkdir -p "$scratch/swagger-ui" "$scratch/redoc"
tar xzf "$scratch/swagger-ui-dist-$SWAGGER_UI.tgz" -C "$scratch/swagger-ui" --strip-components=1
tar xzf "$scratch/redoc-$REDOC.tgz" -C "$scratch/redoc" --strip-components=1
rm -rf "$VENDOR/swagger-ui" "$VENDOR/redoc"
mkdir -p "$VENDOR/swagger-ui" "$VENDOR/redoc"
for file in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE; do
  cp "$scratch/swagger-ui/$file" "$VENDOR/swagger-ui/"
done
for file in bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE; do
  cp "$scratch/redoc/$file" "$VENDOR/redoc/"
done
# The source-map comment would make a browser's developer tools ask for a file we do not ship.
sed -i '/^\/\/# sourceMappingURL=/d' "$VENDOR/swagger-ui/swagger-ui-bundle.js" "$VENDOR/redoc/redoc.standalone.js"
# ReDoc 2 shows the Redocly logo from a CDN (no option turns it off): an empty local image
# instead, so the page asks nothing of the network.
logo='https://cdn.redoc.ly/redoc/logo-mini.svg'
grep -q "$logo" "$VENDOR/redoc/redoc.standalone.js"
sed -i "s|$logo|data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E|" "$VENDOR/redoc/redoc.standalone.js"
printf '{"swagger-ui-dist": "%s", "redoc": "%s"}\n' "$SWAGGER_UI" "$REDOC" > "$VENDOR/versions.json"
echo "vendored swagger-ui-dist $SWAGGER_UI and redoc $REDOC into $VENDOR"
