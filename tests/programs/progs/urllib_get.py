import hashlib, json, urllib.request
data = urllib.request.urlopen("http://web.test/blob/100000", timeout=30).read()
print("RESULT " + json.dumps({"n": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
