"""The demo shop `make run` serves: a catalog with pictures, customers and a month of orders.

Each module seeds one part through the apps' own services; `seed_demo` runs them in order
(`backoffice.demo.steps.STEPS`), so adding a part is one module and one line there.
"""
