-- The menu service's data before rowcast starts: rowcast backfills it into the eager views.
USE menu;
INSERT INTO channels VALUES ('WEB', 'Website'), ('APP', 'Mobile app'), ('KIOSK', 'In-store kiosk');
INSERT INTO categories (channel_code, display_order, name) VALUES
  ('WEB', 1, 'Starters'), ('WEB', 2, 'Mains'), ('WEB', 3, 'Desserts'),
  ('APP', 1, 'Mains'), ('APP', 2, 'Drinks'), ('KIOSK', 1, 'Combos');
INSERT INTO products (category_id, sku, name, price, tags, details) VALUES
  (1, 'ST-001', 'Garlic bread', 4.50, 'vegetarian', '{"kcal": 320, "allergens": ["gluten"]}'),
  (2, 'MN-001', 'Margherita', 11.00, 'vegetarian', '{"kcal": 850, "sizes": {"s": 9.5, "l": 13}}'),
  (2, 'MN-002', 'Diavola', 12.50, 'spicy', NULL),
  (3, 'DS-001', 'Tiramisu', 6.00, '', '{"kcal": 450}'),
  (5, 'DR-001', 'Lemonade', 3.20, 'vegan,gluten_free', NULL);
INSERT INTO substitutions VALUES (2, 3, 1), (3, 2, 1), (1, 4, 2);
INSERT INTO customers (email, name) VALUES ('ada@example.com', 'Ada'), ('alan@example.com', 'Alan');
