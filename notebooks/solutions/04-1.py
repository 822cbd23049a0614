for row in flow.flow_log.rows(type="error"):
    error = json.loads(row.json)["data"]
    print(error["code"], "recoverable" if error["recoverable"] else "NOT recoverable",
          error.get("details"))
for kind in ("close", "refused"):
    for row in flow.flow_log.rows(type=kind):
        print(kind, row.preview)
