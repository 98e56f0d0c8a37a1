-- Example schema of a restaurant menu service: categories per sales channel, products,
-- product substitutions, customers and orders.
CREATE DATABASE IF NOT EXISTS menu;
USE menu;

CREATE TABLE IF NOT EXISTS channels (
  code VARCHAR(16) PRIMARY KEY,
  name VARCHAR(100) NOT NULL
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS categories (
  id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  channel_code VARCHAR(16) NOT NULL,
  display_order SMALLINT UNSIGNED NOT NULL,
  name VARCHAR(100) NOT NULL,
  status ENUM('active', 'hidden', 'deleted') NOT NULL DEFAULT 'active',
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS products (
  id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  category_id INT UNSIGNED NOT NULL,
  sku VARCHAR(32) NOT NULL,
  name VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  tags SET('vegan', 'vegetarian', 'spicy', 'gluten_free') NOT NULL DEFAULT '',
  details JSON NULL,
  available TINYINT(1) NOT NULL DEFAULT 1
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS substitutions (
  product_id INT UNSIGNED NOT NULL,
  substitute_id INT UNSIGNED NOT NULL,
  priority TINYINT UNSIGNED NOT NULL,
  PRIMARY KEY (product_id, substitute_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS customers (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(200) NOT NULL,
  name VARCHAR(200) NOT NULL,
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS orders (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  channel_code VARCHAR(16) NOT NULL,
  status ENUM('placed', 'paid', 'delivered', 'cancelled') NOT NULL DEFAULT 'placed',
  total DECIMAL(12,2) NOT NULL,
  placed_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB;
