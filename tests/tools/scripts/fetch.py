"""An unmodified requests program: fetch URL (argv[1]) verified by CA (argv[2]), with basic auth."""
import sys

import requests

r = requests.get(sys.argv[1], verify=sys.argv[2], auth=("tester", sys.argv[3]), timeout=60)
print("status", r.status_code, "bytes", len(r.content))
