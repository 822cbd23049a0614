import asyncio

flow.type_filter = "tool_use"
await asyncio.sleep(0.3)  # the view refreshes up to ten times a second
flow.selected = flow.rows[0][0]  # as a click on the first row does
print(flow.detail)
flow.type_filter = ""
