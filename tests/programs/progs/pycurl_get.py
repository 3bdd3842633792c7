import io, pycurl
b = io.BytesIO()
c = pycurl.Curl()
c.setopt(c.URL, "http://198.51.100.10/")
c.setopt(c.WRITEDATA, b)
c.setopt(c.CONNECTTIMEOUT, 5)
c.perform()
print("RESULT", b.getvalue())
