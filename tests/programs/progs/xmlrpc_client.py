import hashlib, json, xmlrpc.client
p = xmlrpc.client.ServerProxy("http://rpc.test:8000/")
data = bytes(range(256)) * 100
print("RESULT " + json.dumps({"add": p.add(40, 2), "digest": p.digest(xmlrpc.client.Binary(data)),
                              "sent": hashlib.sha256(data).hexdigest()}))
