"""What a device and the fleet collector must agree on, in the standard library alone.

Both sides import this package and nothing of each other: the record columns and batch format
(`protocol`, `columns`), the HTTP client a device pushes with (`client`), the words for verdict
reasons (`reasons`), the spreadsheet-safe CSV cell (`csvcell`) and which hosts plain http may
reach (`addresses`). Nothing here may import a third-party package (import-linter checks it).
"""
